//! The images as `cargo xtask images` builds them: two builds from the same binaries and packages
//! give the same digests, and each image unpacked from its own layout runs its entrypoint from
//! its own root filesystem (chroot, as the image's user), with the files a distroless base has.
//!
//! The test takes the workspace's debug binaries (the image builder takes the binaries' folder as
//! an input; published images are built from `--release` binaries by the release pipeline).

use std::{fs, os::unix::fs::MetadataExt, path::Path, process::Command};

use chaperone_tests::{
    images::{self, IMAGES, NONROOT, Platform},
    paths,
};

#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn debug_binaries() -> Platform {
    for spec in IMAGES {
        paths::workspace_binary(spec.package, spec.binary).expect("building the workspace binary");
    }
    Platform { arch: images::host_arch().into(), binaries: paths::target_dir().join("debug") }
}

/// Runs `entrypoint args` inside `root` as the image's user: chroot when this process may, else
/// in a user namespace where it is mapped to root (then as that root).
fn run_in_root(unpacked: &images::Unpacked, args: &[&str]) -> std::process::Output {
    // Found on this process's PATH: the command's own PATH below is the image's.
    let program = |name: &str| {
        chaperone_tests::provision::which(name).unwrap_or_else(|| panic!("{name} is not on PATH"))
    };
    let mut command = if is_root() {
        let mut command = Command::new(program("chroot"));
        command.arg(format!("--userspec={}", unpacked.user));
        command
    } else {
        let mut command = Command::new(program("unshare"));
        command.args(["--user", "--map-root-user", "chroot"]);
        command
    };
    command
        .arg(&unpacked.root)
        .args(&unpacked.entrypoint)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/home/nonroot");
    command.output().expect("running chroot")
}

#[test]
fn images_are_reproducible_and_run_from_their_own_root_filesystem() {
    let platform = debug_binaries();
    let work = paths::runs_dir().join(format!("images-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let first =
        images::build(&IMAGES, std::slice::from_ref(&platform), "0.0.0-test", &work.join("a"))
            .expect("first build");
    let second = images::build(
        &IMAGES[1..2],
        std::slice::from_ref(&platform),
        "0.0.0-test",
        &work.join("b"),
    )
    .expect("second build");
    assert_eq!(first.len(), 3);
    assert_eq!(first[1].name, "chaperone-gateway");
    assert_eq!(
        first[1].digest, second[0].digest,
        "two builds of the gateway image from the same inputs differ"
    );
    eprintln!(
        "gateway image digest: {} (both builds), manifests {:?}",
        first[1].digest, first[1].manifests
    );
    // A different version label is a different image: the digest covers the config.
    let relabelled = images::build(
        &IMAGES[1..2],
        std::slice::from_ref(&platform),
        "0.0.1-test",
        &work.join("c"),
    )
    .expect("third build");
    assert_ne!(relabelled[0].digest, first[1].digest);

    for image in &first {
        let root = work.join("roots").join(&image.name);
        let unpacked = images::unpack(&image.layout, &platform.arch, &root).expect("unpacking");
        assert_eq!(unpacked.user, format!("{NONROOT}:{NONROOT}"));
        assert_eq!(unpacked.entrypoint, vec![format!("/usr/local/bin/{}", image.name)]);
        let output = run_in_root(&unpacked, &["--version"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{} --version in its root filesystem failed: {}\n{stdout}{}",
            image.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(env!("CARGO_PKG_VERSION")),
            "{} --version printed {stdout:?}",
            image.name
        );
        check_base_files(&root);
    }
    fs::remove_dir_all(&work).expect("removing the work folder");
}

/// The distroless-style files: users, CA bundle, time zones, the nonroot home; no docs, no shell.
fn check_base_files(root: &Path) {
    let passwd = fs::read_to_string(root.join("etc/passwd")).expect("/etc/passwd");
    assert!(passwd.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:"), "{passwd}");
    let bundle =
        fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).expect("bundle");
    let certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certificates > 100, "the CA bundle holds {certificates} certificates");
    assert!(root.join("usr/share/zoneinfo/Europe/Berlin").is_file(), "tzdata missing");
    assert!(
        root.join("lib/x86_64-linux-gnu/libgcc_s.so.1").exists() || !cfg!(target_arch = "x86_64")
    );
    let home = fs::metadata(root.join("home/nonroot")).expect("/home/nonroot");
    if is_root() {
        assert_eq!((home.uid(), home.gid()), (NONROOT, NONROOT));
    }
    let tmp = fs::metadata(root.join("tmp")).expect("/tmp");
    assert_eq!(tmp.mode() & 0o7777, 0o1777);
    assert!(!root.join("usr/share/doc").exists(), "documentation left in the image");
    assert!(!root.join("bin/sh").exists(), "a shell in the image");
}
