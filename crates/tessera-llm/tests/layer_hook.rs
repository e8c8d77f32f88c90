//! The engine runs every job with a fresh layer hook from its factory.
use std::sync::Arc;
use tessera_llm::{local::collect, Engine};
use tessera_lm::{LayerHook, LayerHookFactory, SamplingParams, SkipAllFfn};

#[tokio::test]
async fn engine_runs_jobs_with_a_fresh_hook() {
    let m = tessera_lm::testing::tiny_model(9).unwrap();
    let prompt: Vec<u32> = vec![5, 17, 99, 3, 200];
    let sp = SamplingParams {
        max_tokens: 6,
        ..Default::default()
    };
    let mut skip = SkipAllFfn;
    let want = tessera_lm::generate_with(&m, &prompt, &sp, Some(&mut skip), &mut |_| true).unwrap();
    let plain = tessera_lm::generate(&m, &prompt, &sp, &mut |_| true).unwrap();
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = made.clone();
    let hooks: LayerHookFactory = Arc::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::new(SkipAllFfn) as Box<dyn LayerHook>
    });
    let engine = Engine::with_hooks(Arc::new(m), 1, 8, 1, Some(hooks)).unwrap();
    for _ in 0..2 {
        let gens = collect(engine.submit_plain(prompt.clone(), sp.clone()).unwrap())
            .await
            .unwrap();
        assert_eq!(gens[0].tokens, want.tokens);
    }
    assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_ne!(
        want.tokens, plain.tokens,
        "skipping every FFN changes this model's output"
    );
}
