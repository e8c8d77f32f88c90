//! Playing strength sanity: MCTS (GTBench settings) never loses to Random on the small deterministic games, and
//! CFR+ does not lose chips to Random in Kuhn Poker over many hands (it is an equilibrium strategy).
use tessera_arena::agents::llm::LlmOptions;
use tessera_arena::agents::AgentSpec;
use tessera_arena::tournament::play_match;
use tessera_arena::GameId;

fn results(game: GameId, a: &str, b: &str, n: u64) -> Vec<f64> {
    let specs = [AgentSpec::parse(a).unwrap(), AgentSpec::parse(b).unwrap()];
    let backends = Default::default();
    (0..n)
        .map(|i| {
            let (x, y) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
            let names = [a, b];
            let r = play_match(
                game,
                [&specs[x], &specs[y]],
                [names[x], names[y]],
                1000 + i,
                &backends,
                &LlmOptions::default(),
            )
            .unwrap();
            r.returns[x] // return of agent `a`
        })
        .collect()
}

#[test]
fn mcts_does_not_lose_to_random_on_deterministic_games() {
    for game in [GameId::TicTacToe, GameId::ConnectFour] {
        let r = results(game, "mcts", "random", 8);
        assert!(r.iter().all(|&x| x >= 0.0), "{}: {r:?}", game.id());
        assert!(
            r.iter().filter(|&&x| x > 0.0).count() >= 5,
            "{}: {r:?}",
            game.id()
        );
    }
}

#[test]
fn cfr_plus_wins_chips_from_random_in_kuhn_poker() {
    let r = results(GameId::KuhnPoker, "cfr+", "random", 2000);
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    // Equilibrium play exploits a uniform-random opponent; its standard error over 2000 hands is about 0.03.
    assert!(mean > 0.05, "mean chips per hand {mean}");
}
