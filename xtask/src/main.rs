//! `cargo xtask build [--release]`: builds what `runboard` serves, the way users run it.
//!
//! 1. the hydrate entry (`runboard-frontend`) for `wasm32-unknown-unknown`;
//! 2. its JS glue with `wasm-bindgen-cli-support` (the CLI's own library, pinned to the
//!    `wasm-bindgen` crate's version), into `target/site/pkg/runboard.{js,wasm}`;
//! 3. in release, `wasm-opt -Oz` (binaryen from npm; see `scripts/tools.sh`);
//! 4. `style/main.css` as `pkg/runboard.css` and `public/` into the site root;
//! 5. the `runboard` binary, compiled while 1–4 run: in release the two halves have their
//!    own cargo build directories (`release`, `wasm-release`), so neither waits for the other
//!    and a two-core machine keeps both cores busy through the wasm's single-unit LTO and
//!    wasm-opt.
//!
//! The output and the compile-time settings are those cargo-leptos gave (the file names
//! Leptos' `HydrationScripts` asks for), without compiling cargo-leptos itself, which took
//! most of a fresh machine's first run.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use wasm_bindgen_cli_support::Bindgen;

/// What the site's files are called; Leptos is told the same through `LEPTOS_OUTPUT_NAME`
/// in `.cargo/config.toml`, and the server through `runboard_app::SITE_OUTPUT_NAME`.
const OUTPUT_NAME: &str = "runboard";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

#[derive(Parser)]
#[command(about = "Runboard's build tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the site (wasm, JS glue, CSS, assets) into target/site and the runboard binary.
    Build {
        /// Optimised build, as `scripts/run-demo` and the Dockerfile use (wasm-opt included).
        #[arg(long)]
        release: bool,
    },
}

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let Cli {
        task: Task::Build { release },
    } = Cli::parse();
    match build(release) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The profiles of each half: the wasm has its own size-tuned release profile.
struct Profiles {
    wasm: &'static str,
    server: &'static str,
}

impl Profiles {
    fn new(release: bool) -> Self {
        if release {
            Self {
                wasm: "wasm-release",
                server: "release",
            }
        } else {
            Self {
                wasm: "dev",
                server: "dev",
            }
        }
    }
}

/// cargo names a profile's output directory after the profile, except `dev` (`debug`).
fn profile_dir(profile: &str) -> &str {
    if profile == "dev" { "debug" } else { profile }
}

fn build(release: bool) -> Result {
    let root = workspace_root()?;
    let target = target_dir(&root);
    let profiles = Profiles::new(release);
    let server_profile = format!("--profile={}", profiles.server);
    let server_args = [
        "build",
        "--package=runboard-server",
        "--bin=runboard",
        &server_profile,
    ];
    println!("==> server: compiling the runboard binary (alongside the site)");
    let started = Instant::now();
    let mut server = spawn_cargo(&root, &server_args)?;
    let site = build_site(&root, &target, release, &profiles);
    // Waited for even when the site failed, so that no cargo is left running.
    let server_built = finish(&mut server, &server_args);
    site?;
    server_built?;
    println!("    (server: {:.1}s)", started.elapsed().as_secs_f64());
    println!(
        "==> built {} and {}",
        target
            .join(profile_dir(profiles.server))
            .join("runboard")
            .display(),
        target.join("site").display()
    );
    Ok(())
}

/// The site: the wasm, its JS glue, CSS and assets, into `target/site`.
fn build_site(root: &Path, target: &Path, release: bool, profiles: &Profiles) -> Result {
    let site = target.join("site");
    let pkg = site.join("pkg");
    step("wasm: compiling runboard-frontend", || {
        cargo(
            root,
            &[
                "build",
                "--package=runboard-frontend",
                "--lib",
                &format!("--target={WASM_TARGET}"),
                &format!("--profile={}", profiles.wasm),
            ],
        )
    })?;
    let compiled = target
        .join(WASM_TARGET)
        .join(profile_dir(profiles.wasm))
        .join("runboard_frontend.wasm");
    let wasm = pkg.join(format!("{OUTPUT_NAME}.wasm"));
    // wasm-bindgen and wasm-opt take a while on a large wasm (wasm-opt -Oz two minutes on
    // two cores): skip them when the compiled wasm is byte for byte the one they last ran on
    // for this profile. By content, not time: cargo writes the wasm anew whenever any crate
    // in it was rebuilt, and a change to the server alone leaves it the same.
    let stamp = pkg.join(format!(".built-from-{}", profiles.wasm));
    let built_from = content_digest(&compiled)?;
    if fs::read_to_string(&stamp).is_ok_and(|stamped| stamped == built_from) && wasm.exists() {
        println!("==> wasm: {} is up to date", wasm.display());
    } else {
        let _ = fs::remove_file(&stamp);
        step("wasm: generating the JS glue (wasm-bindgen)", || {
            bindgen(&compiled, &pkg, !release)
        })?;
        if release {
            step("wasm: optimising for size (wasm-opt -Oz)", || {
                wasm_opt(&wasm)
            })?;
        }
        fs::write(&stamp, built_from)?;
    }
    println!(
        "    {} is {} KB",
        wasm.display(),
        fs::metadata(&wasm)?.len() / 1024
    );

    step("site: CSS and assets", || {
        fs::copy(
            root.join("style/main.css"),
            pkg.join(format!("{OUTPUT_NAME}.css")),
        )?;
        copy_dir(&root.join("public"), &site)
    })?;

    Ok(())
}

/// Runs one step, saying what it does and how long it took.
fn step(what: &str, run: impl FnOnce() -> Result) -> Result {
    println!("==> {what}");
    let started = Instant::now();
    run().map_err(|error| format!("{what}: {error}"))?;
    println!("    ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs cargo with `args` and waits for it.
fn cargo(root: &Path, args: &[&str]) -> Result {
    finish(&mut spawn_cargo(root, args)?, args)
}

/// Starts cargo with `args` without waiting for it.
fn spawn_cargo(root: &Path, args: &[&str]) -> Result<Child> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Ok(Command::new(cargo).current_dir(root).args(args).spawn()?)
}

/// Waits for a cargo started by [`spawn_cargo`].
fn finish(child: &mut Child, args: &[&str]) -> Result {
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")).into())
    }
}

fn bindgen(compiled: &Path, pkg: &Path, debug: bool) -> Result {
    fs::create_dir_all(pkg)?;
    Bindgen::new()
        .input_path(compiled)
        .out_name(OUTPUT_NAME)
        .web(true)?
        .typescript(false)
        .debug(debug)
        .keep_debug(debug)
        .generate(pkg)?;
    // Leptos' HydrationScripts asks for `runboard.wasm` when LEPTOS_OUTPUT_NAME is set.
    fs::rename(
        pkg.join(format!("{OUTPUT_NAME}_bg.wasm")),
        pkg.join(format!("{OUTPUT_NAME}.wasm")),
    )?;
    Ok(())
}

fn wasm_opt(wasm: &Path) -> Result {
    let status = Command::new("wasm-opt")
        .arg("-Oz")
        .arg("--enable-bulk-memory")
        .arg(wasm)
        .arg("-o")
        .arg(wasm)
        .status()
        .map_err(|error| {
            format!(
                "cannot run wasm-opt ({error}); scripts/tools.sh installs binaryen from npm \
                 (Debian's binaryen breaks hydration)"
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("wasm-opt failed ({status})").into())
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// The SHA-256 of `file`'s bytes, in hex.
fn content_digest(file: &Path) -> Result<String> {
    let bytes = fs::read(file).map_err(|error| format!("{}: {error}", file.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

fn workspace_root() -> Result<PathBuf> {
    // This crate lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the xtask crate is not inside the workspace".into())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}
