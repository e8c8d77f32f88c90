//! Development probe: decode-step time vs the time to stream every weight through the matvec kernel.
use candle_core::{Device, Tensor};
use tessera_lm::*;
fn main() -> anyhow::Result<()> {
    let p = std::env::args().nth(1).unwrap();
    let m = load(&p)?;
    let ids = m
        .tokenizer()?
        .encode("The history of the printing press begins in the fifteenth century")?;
    let s = speed::measure_decode(&m, &ids, 63)?;
    eprintln!("decode {:.1} tok/s", s.decode_tokens_per_s);
    // Pure matvec over every projection + head.
    let x1 = Tensor::ones((1, 1, 576), candle_core::DType::F32, &Device::Cpu)?;
    let x2 = Tensor::ones((1, 1, 1536), candle_core::DType::F32, &Device::Cpu)?;
    let t0 = std::time::Instant::now();
    for _ in 0..20 {
        for b in &m.blocks {
            for (n, l) in b.linears() {
                let x = if n == "mlp.down_proj" { &x2 } else { &x1 };
                l.forward(x, false)?;
            }
        }
        m.lm_head.forward(&x1, false)?;
    }
    let per = t0.elapsed().as_secs_f64() / 20.0;
    eprintln!(
        "matvec only: {:.1} ms/token => {:.1} tok/s bound",
        per * 1e3,
        1.0 / per
    );
    Ok(())
}
