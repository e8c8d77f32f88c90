//! Small string helpers that never split a UTF-8 character.

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a character boundary
/// (`&s[..max_bytes]` panics when `max_bytes` falls inside a multi-byte character; this does not).
pub fn prefix_at_most(s: &str, max_bytes: usize) -> &str {
    if max_bytes >= s.len() {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The first `n` characters of `s` (all of it when it is shorter).
pub fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stop_at_character_boundaries() {
        let s = "aé€😀b"; // 1 + 2 + 3 + 4 + 1 bytes
        assert_eq!(prefix_at_most(s, 0), "");
        assert_eq!(prefix_at_most(s, 2), "a");
        assert_eq!(prefix_at_most(s, 3), "aé");
        assert_eq!(prefix_at_most(s, 5), "aé");
        assert_eq!(prefix_at_most(s, 9), "aé€");
        assert_eq!(prefix_at_most(s, 10), "aé€😀");
        assert_eq!(prefix_at_most(s, 100), s);
        assert_eq!(first_chars(s, 2), "aé");
        assert_eq!(first_chars(s, 4), "aé€😀");
        assert_eq!(first_chars(s, 9), s);
    }
}
