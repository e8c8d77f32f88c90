use tessera_lm::*;
fn main() -> anyhow::Result<()> {
    let p = std::env::args().nth(1).unwrap();
    let m = load(&p)?;
    let tok = m.tokenizer()?;
    let ids = tok.encode_chat(&[ChatMessage::new(
        "user",
        "Write a short story about a robot.",
    )])?;
    eprintln!("prompt {} tokens", ids.len());
    for _ in 0..2 {
        let t0 = std::time::Instant::now();
        let g = generate(
            &m,
            &ids,
            &SamplingParams {
                max_tokens: 64,
                ..Default::default()
            },
            &mut |_| true,
        )?;
        eprintln!(
            "{} tokens in {:?} => {:.1} tok/s overall",
            g.tokens.len(),
            t0.elapsed(),
            g.tokens.len() as f64 / t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
