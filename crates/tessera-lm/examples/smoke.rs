use tessera_lm::*;
fn main() -> anyhow::Result<()> {
    let p = std::env::args().nth(1).unwrap();
    let t0 = std::time::Instant::now();
    let m = load(&p)?;
    eprintln!("loaded in {:?}, params {}", t0.elapsed(), m.num_params());
    let tok = m.tokenizer()?;
    let ids = tok.encode_chat(&[ChatMessage::new("user", "What is the capital of France?")])?;
    eprintln!("ids {:?}", &ids[..12.min(ids.len())]);
    let t0 = std::time::Instant::now();
    let g = generate(
        &m,
        &ids,
        &SamplingParams {
            max_tokens: 40,
            ..Default::default()
        },
        &mut |s| {
            eprint!("{s}");
            true
        },
    )?;
    eprintln!("\n{} tokens in {:?}", g.tokens.len(), t0.elapsed());
    Ok(())
}
