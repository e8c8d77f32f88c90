//! Times the Grassmann mixture on a star ego-graph of degree `d` (default 50).
fn main() -> tessera_graph::Result<()> {
    let d: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let a: Vec<bool> = (0..d).map(|t| t % 3 != 0).collect();
    let b: Vec<bool> = (0..d).map(|t| t % 2 == 0).collect();
    let t = std::time::Instant::now();
    let reps = 200;
    for _ in 0..reps {
        let _ =
            tessera_graph::mog::grassmann_scores_fast(&[(0.6, a.clone()), (0.4, b.clone())], 1.0)?;
    }
    println!(
        "d={d}: {:.1} us per ego-graph",
        t.elapsed().as_secs_f64() * 1e6 / reps as f64
    );
    Ok(())
}
