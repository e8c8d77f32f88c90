//! Differential test against OpenSpiel 1.4: replays random playouts recorded from `pyspiel` by
//! `bench/openspiel_differential.py` (8 games × 60 playouts in `tests/data/openspiel_playouts.jsonl`) and checks
//! that at every node the player to move, the legal actions (or chance outcomes) and, at the end, the returns
//! are identical. Negotiation (OpenSpiel draws one fixed instance) and the Python-only IPD are checked by unit
//! tests instead.
use tessera_arena::game::{Action, Game, Turn};
use tessera_arena::GameId;

/// Tessera's Breakthrough label `<a7->b6*>` as OpenSpiel writes it (`a7b6*`).
fn openspiel_breakthrough(label: &str) -> String {
    label
        .trim_start_matches('<')
        .trim_end_matches('>')
        .replace("->", "")
}

#[test]
fn playouts_match_openspiel() {
    let text = include_str!("data/openspiel_playouts.jsonl");
    let mut per_game = std::collections::BTreeMap::new();
    for line in text.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = GameId::parse(rec["game"].as_str().unwrap()).unwrap();
        *per_game.entry(id.id()).or_insert(0) += 1;
        let mut g = id.initial();
        for (i, step) in rec["steps"].as_array().unwrap().iter().enumerate() {
            let ctx = format!("{} step {i}", id.id());
            if let Some(outcomes) = step.get("chance") {
                assert_eq!(g.turn(), Turn::Chance, "{ctx}");
                let mut ours = Vec::new();
                g.chance_outcomes(&mut ours);
                let ours: Vec<u64> = ours.iter().map(|o| o.0 as u64).collect();
                let theirs: Vec<u64> = outcomes
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect();
                assert_eq!(ours, theirs, "{ctx}: chance outcomes");
                g.apply(step["a"].as_u64().unwrap() as Action);
                continue;
            }
            let p = step["p"].as_u64().unwrap() as usize;
            assert_eq!(g.turn(), Turn::Player(p), "{ctx}: player to move");
            let legal = tessera_arena::game::legal(&g);
            if id == GameId::Breakthrough {
                let mut ours: Vec<String> = legal
                    .iter()
                    .map(|&a| openspiel_breakthrough(&g.action_label(a)))
                    .collect();
                ours.sort();
                let theirs: Vec<String> = step["legal"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(ours, theirs, "{ctx}: legal moves");
                let want = step["a"].as_str().unwrap();
                let a = legal
                    .iter()
                    .copied()
                    .find(|&a| openspiel_breakthrough(&g.action_label(a)) == want)
                    .unwrap();
                g.apply(a);
            } else {
                let theirs: Vec<u64> = step["legal"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect();
                assert_eq!(
                    legal.iter().map(|&a| a as u64).collect::<Vec<_>>(),
                    theirs,
                    "{ctx}: legal actions"
                );
                g.apply(step["a"].as_u64().unwrap() as Action);
            }
        }
        assert!(
            g.is_terminal(),
            "{}: OpenSpiel ended, Tessera did not",
            id.id()
        );
        let theirs: Vec<f64> = rec["returns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(g.returns().to_vec(), theirs, "{}: returns", id.id());
    }
    assert_eq!(per_game.len(), 8, "{per_game:?}");
}
