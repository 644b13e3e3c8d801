//! Issue 10, finding 4: native code. The default policy's is built into the
//! binary (no compile, no cache file); a custom policy's cached code runs
//! only when its bytes match the SHA-256 the host recorded in state.db when
//! it wrote them; `doctor` checks the cache. The real binary against the
//! emulator over HTTPS.

mod support;
mod wasm_build;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Run, Setup};

/// The default policy's component, as build.rs built it: a custom policy
/// that behaves like the default one.
const POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy.wasm"));

fn state(s: &Setup) -> PathBuf {
    s.dir.path().join("state")
}

/// The default policy with a custom section `name` appended: another
/// module (another SHA-256, another cache file), the same behaviour.
fn write_policy(s: &Setup, file: &str, name: &str) -> PathBuf {
    let mut section = Vec::new();
    leb128(&mut section, name.len());
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(b"payload");
    let mut bytes = POLICY.to_vec();
    bytes.push(0); // custom section
    leb128(&mut bytes, section.len());
    bytes.extend_from_slice(&section);
    let path = s.dir.path().join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn cache_files(state: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.join("cache")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    files.sort();
    files
}

fn ban(s: &Setup, policy: &Path, ip: &str) -> Run {
    s.run(&["--policy", policy.to_str().unwrap(), "-f", "ban", ip])
}

fn assert_banned(s: &Setup, ip: &str, r: &Run) {
    assert!(s.cidrs().iter().any(|c| c == ip), "{ip} not in PVE: {r:?}");
}

/// Fills the `.text` section (the machine code) of an ELF file with `int3`:
/// the file still loads, and any function of it that runs traps. This is
/// how overwritten bytes in a cache file made every command die by SIGTRAP.
fn overwrite_code(path: &Path) {
    let mut elf = std::fs::read(path).unwrap();
    let u16_at =
        |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..4], b"\x7fELF", "a cache file is an ELF file");
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&elf, 0x28),
        u16_at(&elf, 0x3a),
        u16_at(&elf, 0x3c),
        u16_at(&elf, 0x3e),
    );
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(&elf, header(shstrndx) + 0x18);
    let text = (0..shnum)
        .find(|&i| {
            let name = names
                + u32::from_le_bytes(elf[header(i)..header(i) + 4].try_into().unwrap()) as usize;
            elf[name..].starts_with(b".text\0")
        })
        .expect("a .text section");
    let (offset, size) = (
        u64_at(&elf, header(text) + 0x18),
        u64_at(&elf, header(text) + 0x20),
    );
    assert!(size > 0);
    elf[offset..offset + size].fill(0xcc);
    std::fs::write(path, elf).unwrap();
}

// See: issue 10, finding 4
#[test]
fn r10_4_a_corrupted_cache_file_is_never_run() {
    let s = Setup::new();
    let policy = write_policy(&s, "mine.wasm", "mine");
    let r = ban(&s, &policy, "192.0.2.10");
    assert_eq!(r.code, 0, "{r:?}");
    let files = cache_files(&state(&s));
    assert_eq!(
        files.len(),
        1,
        "one cache file for the custom policy: {files:?}"
    );
    overwrite_code(&files[0]);
    let corrupted = std::fs::read(&files[0]).unwrap();

    // Before: SIGTRAP (exit 133), nothing on stderr, on every run.
    let r = ban(&s, &policy, "192.0.2.11");
    assert_eq!(r.code, 0, "the command still works: {r:?}");
    assert!(
        r.stderr
            .contains("does not match the SHA-256 recorded when fail2pvefw wrote it")
            && r.stderr.contains("it was not run; compiling policy"),
        "a warning says what was found and done: {r:?}"
    );
    assert_banned(&s, "192.0.2.11", &r);
    assert_ne!(
        std::fs::read(&files[0]).unwrap(),
        corrupted,
        "the file was replaced"
    );
    // The replaced file is recorded: the next run loads it without a word.
    let r = ban(&s, &policy, "192.0.2.12");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "{r:?}");
    assert_banned(&s, "192.0.2.12", &r);
}

// See: issue 10, finding 4
#[test]
fn r10_4_cached_code_of_another_module_is_never_run() {
    // Valid code that loads and runs, put where another module's code is
    // expected: "the same file could carry any code into the process".
    // The other module is the example policy (other code; a custom section
    // alone would not change the compiled code).
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/subnet-escalation");
    let other = wasm_build::build(&example, "subnet_escalation", &[]);
    let s = Setup::new();
    let mine = write_policy(&s, "mine.wasm", "mine");
    assert_eq!(ban(&s, &mine, "192.0.2.20").code, 0);
    let mine_file = cache_files(&state(&s));
    assert_eq!(ban(&s, &other, "192.0.2.21").code, 0);
    let all = cache_files(&state(&s));
    assert_eq!(all.len(), 2, "{all:?}");
    let other_file = all.iter().find(|f| !mine_file.contains(f)).unwrap();
    let other_code = std::fs::read(other_file).unwrap();
    assert_ne!(std::fs::read(&mine_file[0]).unwrap(), other_code);
    std::fs::copy(other_file, &mine_file[0]).unwrap();

    let r = ban(&s, &mine, "192.0.2.22");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("does not match the SHA-256") && r.stderr.contains("it was not run"),
        "{r:?}"
    );
    assert_banned(&s, "192.0.2.22", &r);
    assert_ne!(
        std::fs::read(&mine_file[0]).unwrap(),
        other_code,
        "its own code replaced the other module's"
    );
}

// See: issue 10, finding 4
#[test]
fn r10_4_a_cache_file_with_no_record_is_recompiled() {
    // A file fail2pvefw did not write here: copied in from another state
    // directory (valid code of the very same module), so it has no record.
    let donor = Setup::new();
    let policy = write_policy(&donor, "mine.wasm", "mine");
    assert_eq!(ban(&donor, &policy, "192.0.2.30").code, 0);
    let donated = cache_files(&state(&donor));
    assert_eq!(donated.len(), 1);

    let s = Setup::new();
    let cache = state(&s).join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let planted = cache.join(donated[0].file_name().unwrap());
    std::fs::copy(&donated[0], &planted).unwrap();

    let r = ban(&s, &policy, "192.0.2.31");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("has no record in state.db") && r.stderr.contains("it was not run"),
        "{r:?}"
    );
    assert_banned(&s, "192.0.2.31", &r);
    // Now recorded: loaded quietly.
    let r = ban(&s, &policy, "192.0.2.32");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "{r:?}");
    assert_eq!(cache_files(&state(&s)), vec![planted]);
}

// See: issue 10, finding 4
#[test]
fn r10_4_the_first_ban_on_a_fresh_state_directory_compiles_nothing() {
    let s = Setup::new();
    assert!(!state(&s).exists(), "a fresh state directory");
    let timed = |ip: &str| {
        let started = Instant::now();
        let r = s.run(&["-vv", "-f", "ban", ip]);
        let took = started.elapsed();
        assert_eq!(r.code, 0, "{r:?}");
        assert_banned(&s, ip, &r);
        (took, r)
    };
    let (first, r) = timed("192.0.2.40");
    assert!(
        !r.stderr.contains("compiling"),
        "the default policy's code is built in: {r:?}"
    );
    assert!(
        !state(&s).join("cache").exists(),
        "no cache file for the default policy"
    );
    let mut later: Vec<Duration> = (1..=5)
        .map(|i| timed(&format!("192.0.2.{}", 40 + i)).0)
        .collect();
    later.sort();
    assert!(!state(&s).join("cache").exists());

    // A custom policy's first run does compile (and says so with -vv).
    let policy = write_policy(&s, "mine.wasm", "mine");
    let started = Instant::now();
    let r = s.run(&[
        "-vv",
        "--policy",
        policy.to_str().unwrap(),
        "-f",
        "ban",
        "192.0.2.50",
    ]);
    let compiled = started.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("compiling policy"), "{r:?}");
    eprintln!(
        "first -f ban on a fresh state directory: {:.1} ms; later ones: median {:.1} ms; \
         a custom policy's first run (compiles): {:.1} ms (debug build)",
        first.as_secs_f64() * 1e3,
        later[later.len() / 2].as_secs_f64() * 1e3,
        compiled.as_secs_f64() * 1e3,
    );
}

// See: issue 10, finding 4
#[test]
fn r10_4_doctor_checks_the_cache() {
    let s = Setup::new();
    let line = |r: &Run| {
        r.stdout
            .lines()
            .find(|l| l.contains("compiled policy code"))
            .unwrap_or_else(|| panic!("no line for the cache: {r:?}"))
            .to_string()
    };
    let r = s.run(&["doctor"]);
    let ok = line(&r);
    assert!(ok.starts_with('✔') && ok.contains("built in"), "{r:?}");

    let policy = write_policy(&s, "mine.wasm", "mine");
    assert_eq!(ban(&s, &policy, "192.0.2.60").code, 0);
    let r = s.run(&["doctor"]);
    let ok = line(&r);
    assert!(ok.starts_with('✔') && ok.contains("1 cached file"), "{r:?}");

    let files = cache_files(&state(&s));
    overwrite_code(&files[0]);
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 3, "a local check failed: {r:?}");
    let bad = line(&r);
    assert!(bad.starts_with('✘'), "{r:?}");
    assert!(
        r.stdout.contains(&format!("'{}'", files[0].display()))
            && r.stdout.contains("does not match the SHA-256")
            && r.stdout.contains("recompiled"),
        "it names the file, what is wrong and what happens: {r:?}"
    );
    assert!(
        r.stdout
            .contains(&format!("rm -r '{}'", state(&s).join("cache").display())),
        "{r:?}"
    );
}
