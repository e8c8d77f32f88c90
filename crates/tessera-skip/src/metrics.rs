//! Quality measures of a skipping model against the full one: the factoid answer scorer, token exact-match and
//! ROUGE-L (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", §3.1: the F-measure of the longest
//! common subsequence of two word sequences, here with β = 1).

/// Lower-cased words of `text`: maximal runs of alphanumeric characters.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Length of the longest common subsequence of `a` and `b` (two-row dynamic programme).
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L F1 of a candidate against a reference, on lower-cased words: `2PR / (P + R)` with `P = LCS/|cand|`,
/// `R = LCS/|ref|`. Two empty texts score 1, one empty text 0.
pub fn rouge_l(candidate: &str, reference: &str) -> f64 {
    let (c, r) = (words(candidate), words(reference));
    if c.is_empty() && r.is_empty() {
        return 1.0;
    }
    let l = lcs_len(&c, &r);
    if l == 0 {
        return 0.0;
    }
    let p = l as f64 / c.len() as f64;
    let rec = l as f64 / r.len() as f64;
    2.0 * p * rec / (p + rec)
}

/// Fraction of positions at which two token sequences agree, over the longer length (1 when both are empty).
pub fn token_match(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len().max(b.len());
    if n == 0 {
        return 1.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64
}

/// Whether `text` contains any of `answers`, case-insensitively, as a whole word or phrase: the characters
/// around the match must not be alphanumeric, so "Au" is not found in "because" nor "8" in "1984".
pub fn answer_correct(text: &str, answers: &[String]) -> bool {
    let hay = text.to_lowercase();
    answers.iter().any(|a| {
        let needle = a.trim().to_lowercase();
        if needle.is_empty() {
            return false;
        }
        let mut from = 0;
        while let Some(off) = hay[from..].find(&needle) {
            let s = from + off;
            let e = s + needle.len();
            let before = hay[..s].chars().next_back();
            let after = hay[e..].chars().next();
            let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
            if boundary(before) && boundary(after) {
                return true;
            }
            from = s + hay[s..].chars().next().map_or(1, char::len_utf8);
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scorer_on_fixed_examples() {
        assert!(answer_correct(
            "The capital of France is Paris.",
            &v(&["Paris"])
        ));
        assert!(answer_correct("PARIS", &v(&["paris"])));
        assert!(answer_correct(
            "It was written by William Shakespeare.",
            &v(&["Shakespeare", "Marlowe"])
        ));
        assert!(!answer_correct("The capital is Lyon.", &v(&["Paris"])));
        // Whole words only.
        assert!(!answer_correct("because it shines", &v(&["Au"])));
        assert!(answer_correct("Its symbol is Au.", &v(&["Au"])));
        assert!(!answer_correct("In 1984 there were", &v(&["8"])));
        assert!(answer_correct("A spider has 8 legs", &v(&["8", "eight"])));
        assert!(answer_correct("It has eight legs", &v(&["8", "eight"])));
        assert!(answer_correct("in New York City", &v(&["new york"])));
        assert!(!answer_correct("anything", &v(&[""])));
        assert!(!answer_correct("", &v(&["Paris"])));
    }

    #[test]
    fn rouge_l_on_fixed_examples() {
        // LCS("the cat sat on the mat", "the cat on the mat") = 5: P = 5/6, R = 5/5, F = 10/11.
        let f = rouge_l("the cat sat on the mat", "The cat on the mat");
        assert!((f - 10.0 / 11.0).abs() < 1e-12, "{f}");
        assert_eq!(rouge_l("a b c", "a b c"), 1.0);
        assert_eq!(rouge_l("x y", "a b"), 0.0);
        assert_eq!(rouge_l("", ""), 1.0);
        assert_eq!(rouge_l("", "a"), 0.0);
        // LCS("a b c d", "b d a") = 2 ("b d"): P = 2/4, R = 2/3, F = 4/7.
        assert!((rouge_l("a b c d", "b d a") - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(lcs_len(&[1, 2, 3, 4, 1], &[3, 4, 1, 2, 1]), 3);
    }

    #[test]
    fn token_match_counts_positions() {
        assert_eq!(token_match(&[1, 2, 3], &[1, 2, 3]), 1.0);
        assert_eq!(token_match(&[1, 2, 3, 4], &[1, 9, 3]), 0.5);
        assert_eq!(token_match(&[], &[]), 1.0);
        assert_eq!(token_match(&[1], &[]), 0.0);
    }
}
