//! The society section of `tessera tour`: a short embedding attack on SmolLM2 (wolf and sheep share the weights)
//! and a small society run (4 agents on a chain, 3 rounds, short replies) with the naive operative message.
use crate::attack::{attack_with, AttackConfig, AttackSettings};
use crate::error::Result;
use crate::society::{self, SocietyConfig, Topology};
use std::sync::Arc;
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// Optimisation steps of the tour's attack.
pub const TOUR_STEPS: usize = 6;

/// Runs the tour's part, writing `society_attack/` and `society_run/` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let path = tessera_core::assets::resolve_model("smollm2-135m", offline)?;
    let model = tessera_lm::load(&path)?;
    let target = crate::targets::canary("hhv-false")?.text.to_string();
    let out = dir.file("society_attack");
    std::fs::create_dir_all(&out).map_err(|e| tessera_core::Error::io(&out, e))?;
    let _ = std::fs::remove_file(out.join("checkpoint.json"));
    let cfg = AttackConfig {
        settings: AttackSettings {
            target: target.clone(),
            steps: TOUR_STEPS,
            eval_every: TOUR_STEPS,
            reply_len: 8,
            ..Default::default()
        },
        out: Some(out.clone()),
        minilm: false,
        offline,
        ..Default::default()
    };
    let att = attack_with(&cfg, &model, &model, None, None)?;
    crate::plot::loss_plot(&[("lr 1e-1".into(), &att)], &out.join("loss.svg"))?;
    let scfg = SocietyConfig {
        agents: 4,
        topology: Topology::Chain,
        rounds: 3,
        max_tokens: 24,
        target: target.clone(),
        out: dir.file("society_run"),
        minilm: false,
        offline,
        ..Default::default()
    };
    std::fs::create_dir_all(&scfg.out).map_err(|e| tessera_core::Error::io(&scfg.out, e))?;
    let backend: Arc<dyn tessera_llm::ChatModel> = Arc::new(tessera_llm::LocalChat::new(
        tessera_lm::load(&path)?,
        "smollm2-135m",
    )?);
    let soc = society::run_with(&scfg, backend, None, None, None)?;
    let mut rep = Report::new("Multi-agent society and covert injection (The Wolf Within)");
    rep.para(&format!(
        "Embedding attack (wolf → hard Gumbel-softmax → sheep, both SmolLM2-135M), target `{target}`, {} signed \
         steps at lr 1e-1: loss {:.3} → {:.3}; success: {}. The full study runs hundreds of steps (see \
         crates/tessera-society/README.md).",
        att.steps_run,
        att.loss.first().copied().unwrap_or(f64::NAN),
        att.loss.last().copied().unwrap_or(f64::NAN),
        att.success
    ));
    rep.image("attack loss", "society_attack/loss.svg");
    rep.para(&format!(
        "Society: 4 SmolLM2 agents on a chain, 3 rounds, the operative (agent 0) joins at round 1 with the naive \
         message. Infected fraction by round {:?}, by hop {:?}.",
        soc.infected_by_round, soc.infected_by_hop
    ));
    rep.image("infection by hop and round", "society_run/infection.svg");
    let json = serde_json::json!({ "attack": att, "society": soc });
    Ok(TourSection::new("society", rep, json))
}
