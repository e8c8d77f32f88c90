//! Random-playout conformance: 10,000 uniformly random games per game. Checks that legal moves never panic,
//! labels are unique and parse back, chance distributions sum to 1, determinisation keeps the player's
//! information set, the game terminates, and returns sum as specified (0 for zero-sum games, ≥ 0 otherwise).
use rand::Rng as _;
use tessera_arena::agents::parse::parse_action;
use tessera_arena::game::{Action, Game, Turn};
use tessera_arena::{GameId, ALL_GAMES};

const PLAYOUTS: usize = 10_000;

fn check_game(id: GameId) {
    let mut rng = tessera_core::rng::derived(42, id.id());
    let mut legal = Vec::new();
    let mut chance = Vec::new();
    let mut outcome_counts = [0usize; 3];
    for n in 0..PLAYOUTS {
        let mut g = id.initial();
        let mut steps = 0;
        let check_text = n < 200; // text rendering + parsing is slower: check it on a subset
        loop {
            steps += 1;
            assert!(steps < 20_000, "{}: game does not terminate", id.id());
            match g.turn() {
                Turn::Terminal => {
                    g.legal_actions(&mut legal);
                    assert!(
                        legal.is_empty(),
                        "{}: terminal position has legal actions",
                        id.id()
                    );
                    break;
                }
                Turn::Chance => {
                    g.chance_outcomes(&mut chance);
                    assert!(!chance.is_empty());
                    if chance.len() <= 1000 {
                        let s: f64 = chance.iter().map(|c| c.1).sum();
                        assert!(
                            (s - 1.0).abs() < 1e-9,
                            "{}: chance probabilities sum to {s}",
                            id.id()
                        );
                    }
                    let a = g.sample_chance(&mut rng);
                    assert!(
                        chance.iter().any(|c| c.0 == a),
                        "{}: sampled outcome {a} not listed",
                        id.id()
                    );
                    g.apply(a);
                }
                Turn::Player(p) => {
                    g.legal_actions(&mut legal);
                    assert!(
                        !legal.is_empty(),
                        "{}: no legal action for a player to move",
                        id.id()
                    );
                    let space = g.action_space();
                    assert!(
                        legal.iter().all(|a| space.contains(a)),
                        "{}: legal action outside the action space",
                        id.id()
                    );
                    assert!(
                        legal.windows(2).all(|w| w[0] < w[1]),
                        "{}: legal actions not sorted/unique",
                        id.id()
                    );
                    let d = g.determinize(p, &mut rng);
                    assert_eq!(
                        d.info_key(p),
                        g.info_key(p),
                        "{}: determinisation changed the information set",
                        id.id()
                    );
                    assert_eq!(d.turn(), g.turn());
                    if check_text {
                        let _ = g.observation(p);
                        let _ = g.observation(1 - p);
                        let labels: std::collections::HashSet<String> =
                            space.clone().map(|a| g.action_label(a)).collect();
                        assert_eq!(
                            labels.len(),
                            space.len(),
                            "{}: duplicate action labels",
                            id.id()
                        );
                        for &a in &legal {
                            let parsed = parse_action(
                                &g,
                                &format!("Thought: fine.\nAction: {}", g.action_label(a)),
                            );
                            assert_eq!(
                                parsed,
                                Ok(a),
                                "{}: label {} does not parse back",
                                id.id(),
                                g.action_label(a)
                            );
                        }
                    }
                    let a: Action = legal[rng.gen_range(0..legal.len())];
                    g.apply(a);
                }
            }
        }
        let r = g.returns();
        assert!(r.iter().all(|x| x.is_finite()));
        if id.zero_sum() {
            assert!(
                (r[0] + r[1]).abs() < 1e-9,
                "{}: zero-sum returns {r:?}",
                id.id()
            );
        } else {
            assert!(
                r[0] >= 0.0 && r[1] >= 0.0,
                "{}: negative general-sum return {r:?}",
                id.id()
            );
        }
        outcome_counts[if r[0] > r[1] {
            0
        } else if r[0] < r[1] {
            1
        } else {
            2
        }] += 1;
    }
    // Random play must produce both wins for player 0 and for player 1 in every game.
    assert!(
        outcome_counts[0] > 0 && outcome_counts[1] > 0,
        "{}: outcomes {outcome_counts:?}",
        id.id()
    );
}

macro_rules! conformance {
    ($($name:ident => $id:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            check_game($id);
        }
    )*};
}

conformance! {
    tic_tac_toe => GameId::TicTacToe,
    connect_four => GameId::ConnectFour,
    breakthrough => GameId::Breakthrough,
    nim => GameId::Nim,
    kuhn_poker => GameId::KuhnPoker,
    liars_dice => GameId::LiarsDice,
    blind_auction => GameId::BlindAuction,
    negotiation => GameId::Negotiation,
    pig => GameId::Pig,
    prisoners_dilemma => GameId::PrisonersDilemma,
}

#[test]
fn every_game_is_covered() {
    assert_eq!(ALL_GAMES.len(), 10);
}
