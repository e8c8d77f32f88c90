//! Scratch probe: trains each optimiser on digits and prints a summary line (used to pick defaults).
use tessera_qnewton::data;
use tessera_qnewton::newton::StepRule;
use tessera_qnewton::train::{train, Optimizer, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let opt = Optimizer::parse(args.get(1).map(String::as_str).unwrap_or("newton"))?;
    let lr: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0.05);
    let steps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let rule = args.get(4).map(String::as_str).unwrap_or("sgd");
    let d = data::digits(false)?;
    let (tr, te) = d.split(0.2, 0);
    let mut cfg = TrainConfig::defaults(opt);
    cfg.steps = steps;
    cfg.eval_every = steps / 5;
    cfg.rule = if rule == "adam" {
        StepRule::Adam { lr }
    } else {
        StepRule::Sgd { lr, momentum: 0.9 }
    };
    if std::env::var("QN_CURV").as_deref() == Ok("gn") {
        cfg.curvature = tessera_qnewton::hessian::Curvature::GaussNewton;
    }
    if let Ok(e) = std::env::var("QN_EPS") {
        cfg.newton.reg_eps = e.parse()?;
    }
    if let Ok(e) = std::env::var("QN_R") {
        cfg.newton.sparsity_ratio = e.parse()?;
    }
    if std::env::var("QN_COMP").as_deref() == Ok("0") {
        cfg.newton.compensate = false;
    }
    if let Some(g) = args.get(5) {
        cfg.scheduler.gate_time = g.parse()?;
    }
    let r = train(&cfg, &tr, &te, |p| {
        eprintln!(
            "  step {} t={:.3}s train {:.4} test {:.4} acc {:.3}",
            p.step, p.time_s, p.train_loss, p.test_loss, p.test_acc
        )
    })?;
    let ks: Vec<String> = r
        .blocks
        .iter()
        .filter(|b| b.step % 20 == 0)
        .map(|b| format!("{}:{:.1e}/{:.0}", b.layer, b.kappa, b.log10_kappa_bound))
        .collect();
    println!(
        "{} lr {lr} {rule}: acc {:.3} loss {:.4} time {:.2}s wall {:.2}s Q {} C {} {:?}",
        r.optimizer,
        r.final_test_acc,
        r.final_train_loss,
        r.time_s,
        r.wall_s,
        r.blocks_quantum,
        r.blocks_classical,
        r.time
    );
    println!("  kappa: {}", ks.join(" "));
    Ok(())
}
