//! Tournament metrics (GTBench paper §2.2 and appendices A5.6/A7/A10).
//!
//! - **NRA** (Normalized Relative Advantage, §2.2): `NRA(A, B) = (Σ_m fs(A, m) − Σ_m fs(B, m)) /
//!   (Σ_m fs(A, m) + Σ_m fs(B, m))` over the K matches of a pairing — a ratio of sums, in [−1, 1], 0 when both
//!   sums are 0. Zero-sum games: fs = 1 win, 0.5 draw, 0 loss; general-sum games (Blind Auction, Negotiation,
//!   IPD): fs = the match reward. A forfeit scores the offender fs = 0 and the opponent a win (zero-sum) or the
//!   reward it had earned (general-sum); GTBench re-runs such matches instead, which hides them.
//! - **Elo** (§A10): `E = 1/(1+10^((R_B−R_A)/400))`, `R' = R + K(S−E)`, K = 20, start 1500, applied to the
//!   matches in order; made order-independent by averaging the final ratings over random match orders.
//! - **Bradley–Terry**: maximum-likelihood strengths by Hunter's MM algorithm (draws = half a win each, plus one
//!   virtual draw per pair so undefeated agents stay finite), on the Elo scale (1500 + 400·log10 p, mean 1500),
//!   with bootstrap 95% percentile intervals over resampled matches.
//! - **Regret** (§A7): Blind Auction, per match with own bid b1, opponent bid b2, valuation v:
//!   b1 − (b2+1) if b1 > b2+1, else v − (b2+1) if b2+1 < v, else 0. IPD, per round (own vs opponent):
//!   Defect vs any → 0, Cooperate vs Defect → 1, Cooperate vs Cooperate → 2.
//! - Completion / forfeit rates and the error profile (forfeits by kind, retried answers).
use crate::games::GameId;
use crate::tournament::{MatchRecord, Status};
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::BTreeMap;

/// NRA scores fs of both seats in one match.
pub fn match_scores(r: &MatchRecord) -> [f64; 2] {
    if let (Status::Forfeit, Some(f)) = (r.status, &r.forfeit) {
        let mut s = [0.0; 2];
        let other = 1 - f.player;
        s[other] = if r.game.zero_sum() {
            1.0
        } else {
            r.returns[other].max(0.0)
        };
        return s;
    }
    if r.game.zero_sum() {
        let d = r.returns[0] - r.returns[1];
        if d > 0.0 {
            [1.0, 0.0]
        } else if d < 0.0 {
            [0.0, 1.0]
        } else {
            [0.5, 0.5]
        }
    } else {
        r.returns
    }
}

/// `NRA = (a − b) / (a + b)`, 0 when both are 0.
pub fn nra(sum_a: f64, sum_b: f64) -> f64 {
    let d = sum_a + sum_b;
    if d.abs() < 1e-12 {
        0.0
    } else {
        (sum_a - sum_b) / d
    }
}

/// Win (1), draw (0.5) or loss (0) of seat 0 for ratings, from the NRA scores.
fn outcome(s: [f64; 2]) -> f64 {
    if s[0] > s[1] {
        1.0
    } else if s[0] < s[1] {
        0.0
    } else {
        0.5
    }
}

/// Head-to-head totals of `agent` against `opponent` in one game.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PairStats {
    /// Matches.
    pub matches: usize,
    /// Σ fs of the agent.
    pub score: f64,
    /// Σ fs of the opponent.
    pub opponent_score: f64,
    /// Wins / draws / losses of the agent.
    pub wins: usize,
    /// Draws.
    pub draws: usize,
    /// Losses.
    pub losses: usize,
    /// Forfeits by the agent.
    pub forfeits: usize,
    /// NRA of the agent against the opponent.
    pub nra: f64,
    /// Bootstrap 95% interval of `nra` (matches resampled with replacement).
    pub nra_ci: (f64, f64),
}

/// One agent's line in a leaderboard.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentStats {
    /// Agent spec.
    pub agent: String,
    /// Mean NRA over the opponents it met.
    pub nra: f64,
    /// Elo (K = 20, averaged over shuffles).
    pub elo: f64,
    /// Bradley–Terry rating (Elo scale).
    pub bt: f64,
    /// Bootstrap 95% interval of `bt`.
    pub bt_ci: (f64, f64),
    /// Matches played.
    pub matches: usize,
    /// Forfeits caused.
    pub forfeits: usize,
    /// forfeits / matches.
    pub forfeit_rate: f64,
    /// Answers retried after an error (LLM agents).
    pub retried_answers: u32,
    /// Mean regret (Blind Auction: per match; IPD: per round), where defined.
    pub regret: Option<f64>,
    /// Mean game return per match (chips, points, reward) over completed matches.
    pub mean_return: f64,
    /// Mean wall-clock seconds of the matches it played.
    pub seconds_per_match: f64,
}

/// Ratings and tables of one game (or of all games together when `game` is `None`).
#[derive(Clone, Debug, Serialize)]
pub struct Leaderboard {
    /// The game, or `None` for the overall board.
    pub game: Option<GameId>,
    /// Agents sorted by NRA.
    pub agents: Vec<AgentStats>,
    /// Head-to-head NRA: (agent, opponent) → stats.
    pub pairs: Vec<(String, String, PairStats)>,
}

/// Everything the report shows.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    /// Per game.
    pub games: Vec<Leaderboard>,
    /// All games pooled (NRA: mean over games of per-game NRA).
    pub overall: Leaderboard,
    /// Matches scored.
    pub matches: usize,
    /// Scored matches that completed without forfeit / all scored matches.
    pub completion_rate: f64,
    /// Forfeits by (agent, kind).
    pub error_profile: BTreeMap<String, BTreeMap<String, usize>>,
}

/// Elo with K = 20 from 1500 over `order`; returns final ratings.
fn elo_once(n: usize, games: &[(usize, usize, f64)], order: &[usize]) -> Vec<f64> {
    let mut r = vec![1500.0; n];
    for &k in order {
        let (a, b, s) = games[k];
        let e = 1.0 / (1.0 + 10f64.powf((r[b] - r[a]) / 400.0));
        r[a] += 20.0 * (s - e);
        r[b] += 20.0 * ((1.0 - s) - (1.0 - e));
    }
    r
}

/// Elo averaged over `shuffles` random orders of the matches (seeded).
pub fn elo(n: usize, games: &[(usize, usize, f64)], shuffles: usize, seed: u64) -> Vec<f64> {
    let mut rng = tessera_core::rng::derived(seed, "elo");
    let mut order: Vec<usize> = (0..games.len()).collect();
    let mut acc = vec![0.0; n];
    for _ in 0..shuffles.max(1) {
        order.shuffle(&mut rng);
        for (a, r) in acc.iter_mut().zip(elo_once(n, games, &order)) {
            *a += r;
        }
    }
    acc.iter().map(|a| a / shuffles.max(1) as f64).collect()
}

/// Bradley–Terry ratings on the Elo scale by Hunter's MM algorithm (one virtual draw per pair that met).
pub fn bradley_terry(n: usize, games: &[(usize, usize, f64)]) -> Vec<f64> {
    let mut wins = vec![0.0; n];
    let mut count = vec![vec![0.0; n]; n];
    for &(a, b, s) in games {
        wins[a] += s;
        wins[b] += 1.0 - s;
        count[a][b] += 1.0;
        count[b][a] += 1.0;
    }
    for (a, row) in count.iter_mut().enumerate() {
        for (b, c) in row.iter_mut().enumerate() {
            if a != b && *c > 0.0 {
                *c += 1.0;
                wins[a] += 0.5;
            }
        }
    }
    let mut p = vec![1.0; n];
    for _ in 0..500 {
        let mut next = p.clone();
        for i in 0..n {
            let denom: f64 = (0..n)
                .filter(|&j| j != i && count[i][j] > 0.0)
                .map(|j| count[i][j] / (p[i] + p[j]))
                .sum();
            if denom > 0.0 {
                next[i] = wins[i] / denom;
            }
        }
        let lg: f64 = next.iter().map(|x| x.max(1e-300).ln()).sum::<f64>() / n as f64;
        let diff: f64 = next
            .iter()
            .zip(&p)
            .map(|(a, b)| (a / lg.exp() - b).abs())
            .sum();
        p = next.iter().map(|x| x / lg.exp()).collect();
        if diff < 1e-10 {
            break;
        }
    }
    p.iter()
        .map(|x| 1500.0 + 400.0 * x.max(1e-300).log10())
        .collect()
}

/// Bootstrap 95% percentile intervals of [`bradley_terry`] over `reps` resamples of the matches.
pub fn bt_intervals(
    n: usize,
    games: &[(usize, usize, f64)],
    reps: usize,
    seed: u64,
) -> Vec<(f64, f64)> {
    use rand::Rng as _;
    let mut rng = tessera_core::rng::derived(seed, "bt-bootstrap");
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    if games.is_empty() {
        return vec![(1500.0, 1500.0); n];
    }
    for _ in 0..reps {
        let resample: Vec<_> = (0..games.len())
            .map(|_| games[rng.gen_range(0..games.len())])
            .collect();
        for (s, r) in samples.iter_mut().zip(bradley_terry(n, &resample)) {
            s.push(r);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| a.total_cmp(b));
            let q = |f: f64| s[((s.len() - 1) as f64 * f).round() as usize];
            (q(0.025), q(0.975))
        })
        .collect()
}

/// Blind-auction regret of `seat` in one finished match (paper §A7).
pub fn auction_regret(r: &MatchRecord, seat: usize) -> Option<f64> {
    let values: Vec<f64> = r
        .moves
        .iter()
        .filter(|m| m.chance)
        .take(2)
        .map(|m| m.action as f64)
        .collect();
    let bids: Vec<f64> = r
        .moves
        .iter()
        .filter(|m| !m.chance)
        .map(|m| m.action as f64)
        .collect();
    if values.len() < 2 || bids.len() < 2 {
        return None;
    }
    let (b1, b2, v) = (bids[seat], bids[1 - seat], values[seat]);
    Some(if b1 > b2 + 1.0 {
        b1 - (b2 + 1.0)
    } else if b2 + 1.0 < v {
        v - (b2 + 1.0)
    } else {
        0.0
    })
}

/// IPD regrets of `seat` summed over rounds, and the number of rounds (paper §A7).
pub fn ipd_regret(r: &MatchRecord, seat: usize) -> (f64, usize) {
    let decisions: Vec<u16> = r
        .moves
        .iter()
        .filter(|m| !m.chance)
        .map(|m| m.action)
        .collect();
    let mut total = 0.0;
    let mut rounds = 0;
    for pair in decisions.chunks_exact(2) {
        let (own, opp) = (pair[seat], pair[1 - seat]);
        total += match (own, opp) {
            (1, _) => 0.0,
            (0, 1) => 1.0,
            _ => 2.0,
        };
        rounds += 1;
    }
    (total, rounds)
}

fn board(
    game: Option<GameId>,
    records: &[&MatchRecord],
    seed: u64,
    bootstrap: usize,
) -> Leaderboard {
    let mut names: Vec<String> = records
        .iter()
        .flat_map(|r| r.seats.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    let idx = |s: &str| names.iter().position(|n| n == s).unwrap_or(0);
    let n = names.len();
    let mut pairs: BTreeMap<(usize, usize), PairStats> = BTreeMap::new();
    let mut results = Vec::new();
    let mut stats: Vec<AgentStats> = names
        .iter()
        .map(|a| AgentStats {
            agent: a.clone(),
            ..Default::default()
        })
        .collect();
    let mut regret_acc = vec![(0.0, 0usize); n];
    let mut return_acc = vec![(0.0, 0usize); n];
    let mut time_acc = vec![0.0; n];
    let mut per_pair: BTreeMap<(usize, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for r in records {
        let s = match_scores(r);
        let ids = [idx(&r.seats[0]), idx(&r.seats[1])];
        results.push((ids[0], ids[1], outcome(s)));
        for seat in 0..2 {
            let me = ids[seat];
            per_pair
                .entry((me, ids[1 - seat]))
                .or_default()
                .push((s[seat], s[1 - seat]));
            time_acc[me] += r.duration_s;
            let st = pairs.entry((me, ids[1 - seat])).or_default();
            st.matches += 1;
            st.score += s[seat];
            st.opponent_score += s[1 - seat];
            match s[seat].partial_cmp(&s[1 - seat]) {
                Some(std::cmp::Ordering::Greater) => st.wins += 1,
                Some(std::cmp::Ordering::Less) => st.losses += 1,
                _ => st.draws += 1,
            }
            let forfeited = r.forfeit.as_ref().is_some_and(|f| f.player == seat);
            if forfeited {
                st.forfeits += 1;
                stats[me].forfeits += 1;
            }
            stats[me].matches += 1;
            stats[me].retried_answers += r.retries[seat];
            if r.status == Status::Ok {
                return_acc[me].0 += r.returns[seat];
                return_acc[me].1 += 1;
                match r.game {
                    GameId::BlindAuction => {
                        if let Some(x) = auction_regret(r, seat) {
                            regret_acc[me].0 += x;
                            regret_acc[me].1 += 1;
                        }
                    }
                    GameId::PrisonersDilemma => {
                        let (t, k) = ipd_regret(r, seat);
                        regret_acc[me].0 += t;
                        regret_acc[me].1 += k;
                    }
                    _ => {}
                }
            }
        }
    }
    let elo = elo(n, &results, 100, seed);
    let bt = bradley_terry(n, &results);
    let ci = bt_intervals(n, &results, bootstrap, seed);
    for (i, st) in stats.iter_mut().enumerate() {
        let opp: Vec<f64> = pairs
            .iter()
            .filter(|((a, _), _)| *a == i)
            .map(|(_, p)| nra(p.score, p.opponent_score))
            .collect();
        st.nra = if opp.is_empty() {
            0.0
        } else {
            opp.iter().sum::<f64>() / opp.len() as f64
        };
        st.elo = elo[i];
        st.bt = bt[i];
        st.bt_ci = ci[i];
        st.forfeit_rate = if st.matches > 0 {
            st.forfeits as f64 / st.matches as f64
        } else {
            0.0
        };
        st.regret = (regret_acc[i].1 > 0).then(|| regret_acc[i].0 / regret_acc[i].1 as f64);
        st.mean_return = return_acc[i].0 / return_acc[i].1.max(1) as f64;
        st.seconds_per_match = time_acc[i] / st.matches.max(1) as f64;
    }
    stats.sort_by(|a, b| b.nra.total_cmp(&a.nra).then(b.bt.total_cmp(&a.bt)));
    let pairs = pairs
        .into_iter()
        .map(|((a, b), mut p)| {
            p.nra = nra(p.score, p.opponent_score);
            let tag = format!("nra-ci|{}|{}", names[a], names[b]);
            p.nra_ci = nra_interval(&per_pair[&(a, b)], bootstrap, seed, &tag);
            (names[a].clone(), names[b].clone(), p)
        })
        .collect();
    Leaderboard {
        game,
        agents: stats,
        pairs,
    }
}

/// Bootstrap 95% interval of the NRA of per-match scores `(own, opponent)`: `resamples` resamples of the matches
/// with replacement, 2.5% and 97.5% quantiles (the point estimate twice when `resamples` is 0).
pub fn nra_interval(scores: &[(f64, f64)], resamples: usize, seed: u64, tag: &str) -> (f64, f64) {
    let point = nra(
        scores.iter().map(|s| s.0).sum(),
        scores.iter().map(|s| s.1).sum(),
    );
    if resamples == 0 || scores.len() < 2 {
        return (point, point);
    }
    use rand::Rng as _;
    let mut rng = tessera_core::rng::derived(seed, tag);
    let mut v: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut a, mut b) = (0.0, 0.0);
            for _ in 0..scores.len() {
                let s = scores[rng.gen_range(0..scores.len())];
                a += s.0;
                b += s.1;
            }
            nra(a, b)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    (q(0.025), q(0.975))
}

/// Computes every metric over scored match records (see [`crate::tournament::scored`]).
pub fn compute(records: &[MatchRecord], seed: u64, bootstrap: usize) -> Metrics {
    let mut games: Vec<GameId> = records.iter().map(|r| r.game).collect();
    games.sort();
    games.dedup();
    let boards: Vec<Leaderboard> = games
        .iter()
        .map(|&g| {
            board(
                Some(g),
                &records.iter().filter(|r| r.game == g).collect::<Vec<_>>(),
                seed,
                bootstrap,
            )
        })
        .collect();
    let mut overall = board(None, &records.iter().collect::<Vec<_>>(), seed, bootstrap);
    // Overall NRA = mean over games of the per-game NRA (the paper averages per-game NRA).
    for st in &mut overall.agents {
        let per_game: Vec<f64> = boards
            .iter()
            .filter_map(|b| b.agents.iter().find(|a| a.agent == st.agent))
            .map(|a| a.nra)
            .collect();
        st.nra = if per_game.is_empty() {
            0.0
        } else {
            per_game.iter().sum::<f64>() / per_game.len() as f64
        };
        st.regret = None;
        st.mean_return = f64::NAN;
    }
    overall.agents.sort_by(|a, b| b.nra.total_cmp(&a.nra));
    let mut error_profile: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for r in records {
        if let Some(f) = &r.forfeit {
            let kind = serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            *error_profile
                .entry(f.agent.clone())
                .or_default()
                .entry(kind)
                .or_default() += 1;
        }
    }
    let completed = records.iter().filter(|r| r.status == Status::Ok).count();
    Metrics {
        games: boards,
        overall,
        matches: records.len(),
        completion_rate: if records.is_empty() {
            0.0
        } else {
            completed as f64 / records.len() as f64
        },
        error_profile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nra_is_a_ratio_of_sums() {
        // 3 wins, 1 draw, 1 loss: sums 3.5 vs 1.5 -> 2/5.
        assert!((nra(3.5, 1.5) - 0.4).abs() < 1e-12);
        assert_eq!(nra(0.0, 0.0), 0.0);
        assert_eq!(nra(5.0, 0.0), 1.0);
    }

    #[test]
    fn elo_and_bt_rank_the_stronger_player_first() {
        let games: Vec<(usize, usize, f64)> = (0..40)
            .map(|i| if i % 4 == 0 { (1, 0, 1.0) } else { (0, 1, 1.0) })
            .collect();
        let e = elo(2, &games, 50, 1);
        assert!(e[0] > e[1] && ((e[0] + e[1]) / 2.0 - 1500.0).abs() < 1e-6);
        let bt = bradley_terry(2, &games);
        // 30 wins + 0.5 vs 10 + 0.5 with one virtual draw: p0/p1 = 30.5/10.5.
        assert!(((bt[0] - bt[1]) - 400.0 * (30.5f64 / 10.5).log10()).abs() < 1e-3);
        let ci = bt_intervals(2, &games, 100, 3);
        assert!(ci[0].0 <= bt[0] && bt[0] <= ci[0].1 && ci[0].0 > ci[1].1 - 400.0);
    }

    #[test]
    fn regret_follows_the_paper() {
        use crate::tournament::MoveRecord;
        let mv = |player: Option<usize>, action: u16| MoveRecord {
            player,
            chance: player.is_none(),
            action,
            label: String::new(),
        };
        let mut r = MatchRecord {
            key: "k".into(),
            game: GameId::BlindAuction,
            seed: 0,
            index: 0,
            seats: ["a".into(), "b".into()],
            moves: vec![mv(None, 8), mv(None, 5), mv(Some(0), 6), mv(Some(1), 2)],
            returns: [2.0, 0.0],
            status: Status::Ok,
            forfeit: None,
            infrastructure_error: None,
            llm: vec![],
            retries: [0, 0],
            duration_s: 0.0,
        };
        // Seat 0 bid 6 against 2: overbid by 6 - 3 = 3. Seat 1 (v = 5) could have won at 7? no: b2 + 1 = 7 >= 5 -> 0.
        assert_eq!(auction_regret(&r, 0), Some(3.0));
        assert_eq!(auction_regret(&r, 1), Some(0.0));
        r.game = GameId::PrisonersDilemma;
        r.moves = vec![
            mv(Some(0), 0),
            mv(Some(1), 1),
            mv(None, 0),
            mv(Some(0), 0),
            mv(Some(1), 0),
            mv(None, 1),
        ];
        assert_eq!(ipd_regret(&r, 0), (3.0, 2));
        assert_eq!(ipd_regret(&r, 1), (2.0, 2));
    }

    #[test]
    fn nra_interval_brackets_the_estimate_and_narrows_with_more_matches() {
        let few: Vec<(f64, f64)> = (0..10)
            .map(|i| if i < 7 { (1.0, 0.0) } else { (0.0, 1.0) })
            .collect();
        let many: Vec<(f64, f64)> = (0..200)
            .map(|i| if i % 10 < 7 { (1.0, 0.0) } else { (0.0, 1.0) })
            .collect();
        let (lo, hi) = nra_interval(&few, 500, 1, "t");
        assert!(lo <= 0.4 && 0.4 <= hi && lo < hi, "{lo} {hi}");
        let (lo2, hi2) = nra_interval(&many, 500, 1, "t");
        assert!(lo2 <= 0.4 && 0.4 <= hi2);
        assert!(hi2 - lo2 < hi - lo);
        assert_eq!(nra_interval(&few, 0, 1, "t"), (0.4, 0.4));
    }
}
