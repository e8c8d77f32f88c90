//! Scratch: times the pieces of pruning on a 1040×1040 symmetric matrix.
use tessera_qnewton::clock::Stopwatch as Instant;
use tessera_qnewton::hhl::random_symmetric;
use tessera_qnewton::newton::{regularize_in_place, NewtonConfig};
use tessera_qnewton::sparsify::{sparsify_symmetric, Symmetrize};

fn main() {
    faer::set_global_parallelism(faer::Par::Seq);
    let h = random_symmetric(1040, 100.0, false, 0).unwrap();
    let t = Instant::start();
    for _ in 0..10 {
        let _ = sparsify_symmetric(&h, std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(0.25), Symmetrize::Intersection, true);
    }
    println!("sparsify {:.2} ms", t.elapsed() * 100.0);
    let t = Instant::start();
    for _ in 0..10 {
        let mut a = h.clone();
        let _ = regularize_in_place(&mut a, &NewtonConfig::default());
    }
    println!(
        "clone+regularize {:.2} ms",
        t.elapsed() * 100.0
    );
    let t = Instant::start();
    let mut mags = Vec::with_capacity(1040);
    for _ in 0..10 {
        for i in 0..1040 {
            mags.clear();
            mags.extend(h.col_as_slice(i).iter().map(|v| v.abs()));
            let _ = mags.select_nth_unstable_by(259, |a: &f64, b: &f64| b.total_cmp(a));
        }
    }
    println!("select {:.2} ms", t.elapsed() * 100.0);
}
