//! Bad flags never panic: every numeric flag of every command (found from `--help`) driven with 0, -1, huge,
//! 1e30 and NaN exits 0 or 2 (or is still working when stopped), never panics, and a failure is one line on
//! stderr. Commands get a tiny random model written to a temp dir; the asset cache and data folder are empty, so
//! anything else needing an asset fails fast. Plus the reproductions of issue #11 item 4.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tessera")
}

struct Env {
    dir: tempfile::TempDir,
    model: PathBuf,
    text: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&model, 5).unwrap();
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "hello hello hello world ".repeat(60)).unwrap();
    for d in ["home", "data", "work"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    Env { dir, model, text }
}

/// `(exit code or None when stopped after `limit`, stderr)`.
fn run(e: &Env, args: &[String], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(e.dir.path().join("work"))
        .env("TESSERA_HOME", e.dir.path().join("home"))
        .env("TESSERA_DATA", e.dir.path().join("data"))
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st.code().unwrap_or(-1000));
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read as _;
        let _ = s.read_to_string(&mut err);
    }
    (code, err)
}

fn help(e: &Env, path: &[String]) -> String {
    let mut a = path.to_vec();
    a.push("--help".into());
    let out = Command::new(bin())
        .args(&a)
        .env("TESSERA_HOME", e.dir.path().join("home"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{a:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

fn subcommands(h: &str) -> Vec<String> {
    let Some(rest) = h.split("Commands:\n").nth(1) else {
        return vec![];
    };
    rest.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// `(flag, numeric default)` of every option whose default is a number (or a list of numbers), and the required
/// options of the usage line.
fn numeric_flags(h: &str) -> (Vec<String>, Vec<String>) {
    let mut out = vec![];
    let opts = h.split("Options:\n").nth(1).unwrap_or("");
    let mut blocks: Vec<(String, String)> = vec![];
    for l in opts.lines() {
        let t = l.trim_start();
        if t.starts_with("--") || (t.starts_with('-') && t.contains(", --")) {
            let flag = t
                .split(|c: char| c.is_whitespace() || c == '=')
                .find(|w| w.starts_with("--"))
                .unwrap_or("")
                .trim_end_matches(',')
                .to_string();
            let takes_value = t.contains('<');
            if takes_value {
                blocks.push((flag, t.to_string()));
                continue;
            }
            blocks.push((String::new(), String::new()));
        } else if let Some(b) = blocks.last_mut() {
            b.1.push(' ');
            b.1.push_str(t);
        }
    }
    for (flag, text) in blocks {
        if flag.is_empty() {
            continue;
        }
        if let Some(d) = text
            .split("[default: ")
            .nth(1)
            .and_then(|r| r.split(']').next())
        {
            if !d.is_empty() && d.split(',').all(|x| x.trim().parse::<f64>().is_ok()) {
                out.push(flag);
            }
        }
    }
    let usage = h.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
    let required = usage
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(str::to_string)
        .collect();
    (out, required)
}

fn base_args(e: &Env, path: &[String], h: &str, required: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec!["--offline".into()];
    a.extend(path.iter().cloned());
    let usage = h.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
    if usage.contains("[MODEL]") || usage.contains("<MODEL>") {
        a.push(e.model.display().to_string());
    }
    for r in required {
        a.push(r.clone());
        a.push(match r.as_str() {
            "--text" => e.text.display().to_string(),
            _ => "hi".into(),
        });
    }
    if h.contains("--text <") && !required.iter().any(|r| r == "--text") {
        a.push("--text".into());
        a.push(e.text.display().to_string());
    }
    a
}

/// What is wrong with one run (`None`: exit 0, exit 2 with one line, or still working when stopped).
fn problem(args: &[String], code: Option<i32>, err: &str) -> Option<String> {
    if err.contains("panicked") {
        return Some(format!("{args:?} panicked: {err}"));
    }
    match code {
        None | Some(0) => None,
        Some(2) => {
            let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
            (lines != 1).then(|| format!("{args:?}: {lines} lines: {err}"))
        }
        Some(c) => Some(format!("{args:?} exited {c}: {err}")),
    }
}

fn one_line_failure(args: &[String], code: Option<i32>, err: &str) {
    if let Some(p) = problem(args, code, err) {
        panic!("{p}");
    }
}

/// Panics this test still tolerates: `(command words, flag)`. Empty: `qnewton hhl --dim` and `bench graph --nodes`
/// (found by this test) are now validated, and `bench decode` (not run here, it respawns itself) bounds
/// `--threads` and `--steps` in `tessera_lm::speed::bench_decode`.
const KNOWN: &[(&str, &str)] = &[];

fn known(args: &[String]) -> bool {
    let line = args.join(" ");
    KNOWN
        .iter()
        .any(|(cmd, flag)| line.contains(cmd) && line.contains(&format!("{flag}=")))
}

#[test]
fn every_numeric_flag_survives_hostile_values() {
    let e = env();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut runs: Vec<Vec<String>> = vec![];
    while let Some(path) = todo.pop() {
        // The tour runs every system (minutes); its flags are the systems' own. `bench decode` respawns itself
        // with `--threads` threads and drives llama.cpp, `bench lora` respawns itself too: a stopped run would leave
        // its worker behind (see KNOWN).
        let words = path.join(" ");
        if path.first().is_some_and(|c| c == "tour")
            || words == "bench decode"
            || words == "bench lora"
        {
            continue;
        }
        let h = help(&e, &path);
        let subs = subcommands(&h);
        if !subs.is_empty() {
            for s in subs {
                let mut p = path.clone();
                p.push(s);
                todo.push(p);
            }
            continue;
        }
        let (flags, required) = numeric_flags(&h);
        let base = base_args(&e, &path, &h, &required);
        for f in flags {
            for v in ["0", "-1", "18446744073709551615", "1e30", "NaN"] {
                let mut a = base.clone();
                a.push(format!("{f}={v}"));
                runs.push(a);
            }
        }
    }
    assert!(runs.len() > 50, "found only {} flag runs", runs.len());
    let n = runs.len();
    let runs = std::sync::Mutex::new(runs);
    let found = std::sync::Mutex::new(Vec::new());
    let stopped = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| loop {
                let Some(a) = runs.lock().unwrap().pop() else {
                    break;
                };
                let (code, err) = run(&e, &a, Duration::from_secs(2));
                if code.is_none() {
                    stopped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                if let Some(p) = problem(&a, code, &err) {
                    if !known(&a) {
                        found.lock().unwrap().push(p);
                    }
                }
            });
        }
    });
    let found = found.into_inner().unwrap();
    eprintln!(
        "{n} runs, {} still working when stopped",
        stopped.into_inner()
    );
    assert!(
        found.is_empty(),
        "{} problems:\n{}",
        found.len(),
        found.join("\n")
    );
}

fn args(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn fails(e: &Env, a: &[String], want: &str) -> String {
    let (code, err) = run(e, a, Duration::from_secs(60));
    assert_eq!(code, Some(2), "{a:?}: {err}");
    one_line_failure(a, code, &err);
    assert!(err.contains(want), "{a:?}: {err}");
    err
}

#[test]
fn issue_reproductions_fail_cleanly() {
    let e = env();
    let m = e.model.display().to_string();
    let t = e.text.display().to_string();
    // Perplexity: stride 0 used to divide by zero; a window beyond the context was accepted.
    fails(
        &e,
        &args(&[
            "perplexity",
            &m,
            "--text",
            &t,
            "--window",
            "64",
            "--stride",
            "0",
        ]),
        "stride",
    );
    fails(
        &e,
        &args(&["perplexity", &m, "--text", &t, "--window", "100000"]),
        "context",
    );
    // Generate: max_tokens 0 exited 0; 2^64-1 wrapped the context check; a prompt beyond the context aborted.
    fails(
        &e,
        &args(&["generate", &m, "--prompt", "hi", "--max-tokens", "0"]),
        "max_tokens",
    );
    fails(
        &e,
        &args(&[
            "generate",
            &m,
            "--prompt",
            "hi",
            "--max-tokens",
            "18446744073709551615",
        ]),
        "context",
    );
    let long = "a b c d ".repeat(400);
    fails(
        &e,
        &args(&["generate", &m, "--prompt", &long, "--max-tokens", "4"]),
        "context",
    );
    // Errors name their cause once.
    let dir = e.dir.path().join("empty-model");
    std::fs::create_dir(&dir).unwrap();
    let err = fails(
        &e,
        &args(&["info", &dir.display().to_string()]),
        "config.json",
    );
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    let d = e.dir.path().display().to_string();
    let err = fails(&e, &args(&["perplexity", &m, "--text", &d]), "directory");
    assert_eq!(err.matches("directory").count(), 1, "{err}");
    let bad = e.dir.path().join("bad.txt");
    std::fs::write(&bad, [b'a', 0xff, b'b']).unwrap();
    let err = fails(
        &e,
        &args(&["perplexity", &m, "--text", &bad.display().to_string()]),
        "UTF-8",
    );
    assert_eq!(err.matches("UTF-8").count(), 1, "{err}");
    // A usage error is one line too.
    fails(
        &e,
        &args(&["generate", &m, "--prompt", "hi", "--max-tokens=-1"]),
        "--max-tokens",
    );
    let _ = Path::new(&m);
}
