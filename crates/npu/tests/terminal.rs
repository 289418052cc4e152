//! The real `npu` binary under a pseudo-terminal, as a person runs it: the commands that
//! draw progress bars and log from worker threads must finish and print their results.
//! (In-process tests write to buffers and cannot see a terminal: the main command once
//! hung on one, its worker threads blocked on a stderr lock the main thread held.)
//!
//! This is the one test binary outside `tests/`: only a test of the package that owns
//! the binary is given its path (`CARGO_BIN_EXE_npu`) and has it built first.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a command may take before it counts as hung (the runs here take seconds).
const HANG: Duration = Duration::from_secs(300);

struct Finished {
    code: i32,
    /// Everything the terminal showed (stdout and stderr share it).
    screen: String,
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Runs `npu ARGS` with stdin, stdout and stderr on a new pseudo-terminal (80×24) and
/// returns its exit status and screen; panics if it has not finished within [`HANG`].
fn in_terminal(args: &[&str], env: &[(&str, &str)]) -> Finished {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let size = rustix::termios::Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(&master, size).expect("window size");
    let slave = || -> OwnedFd {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("utf-8 pty name"))
            .expect("open the pty's terminal side")
            .into()
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_npu"));
    cmd.args(args).current_dir(repo()).env_remove("NPU_LOG").env_remove("NO_COLOR").env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::from(slave())).stdout(Stdio::from(slave())).stderr(Stdio::from(slave()));
    let mut child = cmd.spawn().expect("spawn npu");
    drop(cmd); // closes this process's copies of the terminal side
    let mut reader = std::fs::File::from(master);
    let screen = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        // Reads end with EIO once every terminal-side descriptor is closed.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`npu {}` did not finish in {} s on a terminal: it hung", args.join(" "), HANG.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished { code: status.code().unwrap_or(-1), screen: screen.join().expect("reader thread") }
}

/// SGR (colour and style) escape sequences, `ESC [ digits;… m`; cursor movement and line
/// clearing (progress bars) are not colour.
fn colour_codes(text: &str) -> usize {
    let b = text.as_bytes();
    let mut n = 0;
    for i in 0..b.len() {
        if b[i] == 0x1b && b.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b';') {
                j += 1;
            }
            if b.get(j) == Some(&b'm') {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn compare_finishes_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cmp");
    let args = [
        "compare",
        "--limit",
        "64",
        "--schemes",
        "fp32,int8-per-channel,w4a8-per-channel",
        "--jobs",
        "2",
        "-o",
        out.to_str().expect("utf-8"),
    ];
    let f = in_terminal(&args, &[]);
    assert_eq!(f.code, 0, "{}", f.screen);
    assert!(f.screen.contains("INT8, per-channel") && f.screen.contains("W4A8, per-channel"), "{}", f.screen);
    assert!(f.screen.contains("wrote compare.md"), "{}", f.screen);
    assert!(out.join("compare.csv").is_file());
}

#[test]
fn simulate_with_data_finishes_on_a_terminal() {
    let f = in_terminal(&["simulate", "zoo:cnn", "--limit", "96"], &[]);
    assert_eq!(f.code, 0, "{}", f.screen);
    assert!(f.screen.contains("top-1") && f.screen.contains("from the simulator's outputs"), "{}", f.screen);
}

#[test]
fn sweep_finishes_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("plan.ron");
    std::fs::write(
        &plan,
        r#"(name: "pty", models: ["zoo:cnn"], schemes: ["int8-per-channel"],
            params: {"mac.rows+mac.cols": Doubling(from: 8, to: 32)}, images: 48)"#,
    )
    .expect("write plan");
    let out = dir.path().join("out");
    let f = in_terminal(&["sweep", plan.to_str().expect("utf-8"), "-o", out.to_str().expect("utf-8")], &[]);
    assert_eq!(f.code, 0, "{}", f.screen);
    assert!(f.screen.contains("3 of 3 points"), "{}", f.screen);
    assert_eq!(std::fs::read_to_string(out.join("results.jsonl")).expect("results").lines().count(), 3);
}

#[test]
fn debug_logging_from_worker_threads_finishes_on_a_terminal_without_colour_when_asked() {
    let f = in_terminal(&["--log", "debug", "simulate", "zoo:mobilenet", "--limit", "64"], &[("NO_COLOR", "1")]);
    assert_eq!(f.code, 0, "{}", f.screen);
    assert!(f.screen.contains("DEBUG"), "debug lines shown: {}", f.screen);
    assert_eq!(colour_codes(&f.screen), 0, "NO_COLOR honoured: {}", f.screen);

    let dir = tempfile::tempdir().expect("tempdir");
    let build = dir.path().join("build");
    let f = in_terminal(&["--log", "debug", "compile", "zoo:cnn", "-o", build.to_str().expect("utf-8")], &[]);
    assert_eq!(f.code, 0, "{}", f.screen);
    assert!(f.screen.contains("compiled"), "{}", f.screen);
    assert!(colour_codes(&f.screen) > 0, "log lines are coloured on a terminal: {}", f.screen);
}

#[test]
fn debug_logging_to_a_file_with_parallel_work_finishes_and_has_no_colour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let plan = repo().join("docs/sweep/mac-array.ron");
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_npu"))
        .args(["--log", "debug", "sweep", plan.to_str().expect("utf-8"), "-q", "--jobs", "2"])
        .args(["-o", out.to_str().expect("utf-8")])
        .current_dir(repo())
        .env_remove("NPU_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn npu");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(start.elapsed() < HANG, "npu --log debug sweep … 2>file hung");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("100 of 100 points"), "{stdout}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert_eq!(colour_codes(&text), 0, "no colour codes in a log file");
}
