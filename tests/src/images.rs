//! OCI images of the operator, the gateway and the CLI, built without a container engine.
//!
//! Each image has two layers:
//!
//! 1. a distroless-style root filesystem: the files of the pinned Debian packages in
//!    `containers/debian-packages.txt` (glibc, libgcc, CA certificates, tzdata; no maintainer
//!    script runs, documentation is left out), a CA bundle concatenated from the package's
//!    certificates, `/etc/passwd` and `/etc/group` with the `nonroot` user (65532), `/tmp` and
//!    `/home/nonroot`;
//! 2. the binary at `/usr/local/bin/<name>`.
//!
//! Layers are tar archives written in path order with every mtime 0 and every owner root (but
//! `/home/nonroot`), gzipped with a fixed header; the config and manifests are JSON with sorted
//! keys and no timestamps. The same packages and binaries therefore give the same digests. The
//! output is an OCI image layout per image whose `index.json` names an image index with one
//! manifest per platform (`skopeo copy --all --preserve-digests oci:<dir>:<tag> docker://...`
//! pushes it as one multi-arch tag; docs/images.md).

use std::{
    collections::BTreeMap,
    fs,
    io::{Read, Write},
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One of the project's images.
#[derive(Debug, Clone, Copy)]
pub struct ImageSpec {
    /// Image (and repository) name.
    pub name: &'static str,
    /// The Cargo package that builds the binary.
    pub package: &'static str,
    /// The binary, installed at `/usr/local/bin/<binary>` and run as the entrypoint.
    pub binary: &'static str,
    /// What the image is for (the `org.opencontainers.image.description` label).
    pub description: &'static str,
}

/// The three images Chaperone publishes.
pub const IMAGES: [ImageSpec; 3] = [
    ImageSpec {
        name: "chaperone-operator",
        package: "chaperone-operator",
        binary: "chaperone-operator",
        description: "Chaperone's operator: admission webhooks, per-namespace gateways, approvals",
    },
    ImageSpec {
        name: "chaperone-gateway",
        package: "chaperone-gateway",
        binary: "chaperone-gateway",
        description: "Chaperone's per-namespace AWS gateway: policy, approvals, recording",
    },
    ImageSpec {
        name: "kubectl-chaperone",
        package: "kubectl-chaperone",
        binary: "kubectl-chaperone",
        description: "kubectl plugin for Chaperone: sessions, replay, approvals, policy",
    },
];

/// The user the images run as (distroless's `nonroot`).
pub const NONROOT: u32 = 65532;

/// One pinned Debian package of `containers/debian-packages.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianPin {
    /// Package name.
    pub name: String,
    /// Exact Debian version.
    pub version: String,
    /// Whether the package is architecture-independent (`all`) or built per platform (`any`).
    pub arch_all: bool,
}

/// The pin file's path.
pub fn pin_file() -> PathBuf {
    crate::paths::workspace_root().join("containers/debian-packages.txt")
}

/// Reads `package version any|all` lines (comments and blank lines ignored).
pub fn parse_pins(text: &str) -> anyhow::Result<Vec<DebianPin>> {
    let mut pins = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, version, arch] = words[..] else {
            bail!("line {}: expected `package version any|all`, found {line:?}", number + 1);
        };
        let arch_all = match arch {
            "all" => true,
            "any" => false,
            other => bail!("line {}: architecture must be any or all, not {other:?}", number + 1),
        };
        pins.push(DebianPin { name: name.into(), version: version.into(), arch_all });
    }
    if pins.is_empty() {
        bail!("no packages pinned");
    }
    Ok(pins)
}

/// A platform of an image: the architecture (Debian and OCI use the same names: amd64, arm64)
/// and the folder holding the three binaries built for it.
#[derive(Debug, Clone)]
pub struct Platform {
    /// amd64 or arm64.
    pub arch: String,
    /// Folder with `chaperone-operator`, `chaperone-gateway` and `kubectl-chaperone`.
    pub binaries: PathBuf,
}

/// Reads `ARCH=DIR` (e.g. `arm64=target/aarch64-unknown-linux-gnu/release`).
pub fn parse_platform(spec: &str) -> anyhow::Result<Platform> {
    let (arch, dir) = spec.split_once('=').with_context(|| {
        format!("--platform {spec:?}: expected ARCH=DIR, e.g. amd64=target/release")
    })?;
    if !matches!(arch, "amd64" | "arm64") {
        bail!("--platform {spec:?}: the architecture must be amd64 or arm64");
    }
    Ok(Platform { arch: arch.into(), binaries: PathBuf::from(dir) })
}

/// The architecture of this machine in Debian/OCI spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An image written as an OCI layout.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image's name.
    pub name: String,
    /// The layout directory.
    pub layout: PathBuf,
    /// Digest of the image index (what a registry reports for the pushed tag).
    pub digest: String,
    /// Digest of each platform's image manifest, by architecture.
    pub manifests: BTreeMap<String, String>,
}

/// A regular file, directory or symlink of a layer.
#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32, owner: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// Paths (without a leading `/` or `./`) to nodes; a BTreeMap keeps the tar in path order.
type Tree = BTreeMap<String, Node>;

/// Documentation and package tooling left out of the root filesystem.
const LEFT_OUT: [&str; 5] =
    ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/sbin"];

fn left_out(path: &str) -> bool {
    LEFT_OUT.iter().any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// A path inside a package or layer, normalized: no `./`, no leading or trailing `/`; refuses
/// `..` so that no entry can point outside the root.
fn normalize(path: &Path) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("{} leaves the root filesystem", path.display())
            }
        }
    }
    Ok(parts.join("/"))
}

/// Adds the files of one `.deb` (its data archive, read with `dpkg-deb --fsys-tarfile`).
fn add_deb(tree: &mut Tree, deb: &Path) -> anyhow::Result<()> {
    let output = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .output()
        .context("running dpkg-deb (the image build unpacks Debian packages with it)")?;
    if !output.status.success() {
        bail!(
            "dpkg-deb --fsys-tarfile {} failed: {}",
            deb.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut archive = tar::Archive::new(output.stdout.as_slice());
    let mut hard_links = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = normalize(&entry.path()?)?;
        if path.is_empty() || left_out(&path) {
            continue;
        }
        let mode = entry.header().mode()? & 0o7777;
        let node = match entry.header().entry_type() {
            tar::EntryType::Directory => Node::Dir { mode, owner: 0 },
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                Node::File { mode, data }
            }
            tar::EntryType::Symlink => Node::Symlink {
                target: entry
                    .link_name()?
                    .with_context(|| {
                        format!("{path} in {}: symlink without target", deb.display())
                    })?
                    .to_string_lossy()
                    .into_owned(),
            },
            tar::EntryType::Link => {
                let target = entry.link_name()?.with_context(|| {
                    format!("{path} in {}: hard link without target", deb.display())
                })?;
                hard_links.push((path, normalize(&target)?));
                continue;
            }
            other => bail!("{path} in {}: unexpected entry type {other:?}", deb.display()),
        };
        tree.insert(path, node);
    }
    // Hard links become copies: a layer entry then stands alone whatever the extraction order.
    for (path, target) in hard_links {
        let node = tree.get(&target).cloned().with_context(|| {
            format!("{path} in {}: hard link to missing {target}", deb.display())
        })?;
        tree.insert(path, node);
    }
    Ok(())
}

/// The distroless-style files that no package provides.
fn add_base_files(tree: &mut Tree) -> anyhow::Result<()> {
    let file = |text: &str| Node::File { mode: 0o644, data: text.as_bytes().to_vec() };
    tree.insert(
        "etc/passwd".into(),
        file(&format!(
            "root:x:0:0:root:/root:/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
             nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
        )),
    );
    tree.insert(
        "etc/group".into(),
        file(&format!("root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT}:\n")),
    );
    tree.insert(
        "etc/nsswitch.conf".into(),
        file("passwd: files\ngroup: files\nhosts: files dns\n"),
    );
    tree.insert("etc/localtime".into(), Node::Symlink { target: "/usr/share/zoneinfo/UTC".into() });
    tree.insert("tmp".into(), Node::Dir { mode: 0o1777, owner: 0 });
    tree.insert("root".into(), Node::Dir { mode: 0o700, owner: 0 });
    tree.insert("home".into(), Node::Dir { mode: 0o755, owner: 0 });
    tree.insert("home/nonroot".into(), Node::Dir { mode: 0o700, owner: NONROOT });
    // What update-ca-certificates would write: every certificate of the package, in name order.
    let mut bundle = Vec::new();
    for (path, node) in tree.iter() {
        if let (true, Node::File { data, .. }) =
            (path.starts_with("usr/share/ca-certificates/") && path.ends_with(".crt"), node)
        {
            bundle.extend_from_slice(data);
            if !data.ends_with(b"\n") {
                bundle.push(b'\n');
            }
        }
    }
    if bundle.is_empty() {
        bail!("no certificate under /usr/share/ca-certificates: is ca-certificates pinned?");
    }
    tree.insert(
        "etc/ssl/certs/ca-certificates.crt".into(),
        Node::File { mode: 0o644, data: bundle },
    );
    Ok(())
}

/// Adds the directories that entries sit in but no entry names.
fn add_parents(tree: &mut Tree) {
    let paths: Vec<String> = tree.keys().cloned().collect();
    for path in paths {
        let mut parent = Path::new(&path).parent();
        while let Some(dir) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
            tree.entry(dir.to_string_lossy().into_owned())
                .or_insert(Node::Dir { mode: 0o755, owner: 0 });
            parent = dir.parent();
        }
    }
}

/// The uncompressed tar of a tree: path order, mtime 0, numeric owners only.
fn layer_tar(tree: &Tree) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, node) in tree {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        let (mode, owner, data): (u32, u32, &[u8]) = match node {
            Node::Dir { mode, owner } => {
                header.set_entry_type(tar::EntryType::Directory);
                (*mode, *owner, &[])
            }
            Node::File { mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                (*mode, 0, data)
            }
            Node::Symlink { .. } => {
                header.set_entry_type(tar::EntryType::Symlink);
                (0o777, 0, &[])
            }
        };
        header.set_mode(mode);
        header.set_uid(owner.into());
        header.set_gid(owner.into());
        header.set_size(data.len() as u64);
        let name = if matches!(node, Node::Dir { .. }) { format!("{path}/") } else { path.clone() };
        match node {
            Node::Symlink { target } => builder.append_link(&mut header, &name, target)?,
            _ => builder.append_data(&mut header, &name, data)?,
        }
    }
    Ok(builder.into_inner()?)
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer's compressed bytes and its uncompressed digest (the config's `diff_id`).
struct Layer {
    gzip: Vec<u8>,
    diff_id: String,
}

fn layer(tree: &Tree) -> anyhow::Result<Layer> {
    let tar = layer_tar(tree)?;
    // No file name, mtime 0, fixed level: the gzip header and stream depend on the bytes only.
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(&tar)?;
    Ok(Layer { gzip: encoder.finish()?, diff_id: sha256(&tar) })
}

/// Blobs of a layout, by digest.
#[derive(Default)]
struct Blobs(BTreeMap<String, Vec<u8>>);

impl Blobs {
    /// Stores `data`; returns its OCI descriptor.
    fn add(&mut self, media_type: &str, data: Vec<u8>) -> Value {
        let digest = sha256(&data);
        let descriptor = json!({"mediaType": media_type, "digest": digest, "size": data.len()});
        self.0.insert(digest, data);
        descriptor
    }

    fn add_json(&mut self, media_type: &str, value: &Value) -> anyhow::Result<Value> {
        Ok(self.add(media_type, serde_json::to_vec(value)?))
    }
}

/// The debs of every pin for `arch`, fetched (and cached) by provisioning.
fn base_layer(arch: &str) -> anyhow::Result<(Layer, String)> {
    let debs = crate::provision::ensure_debian_packages(arch)?;
    let mut tree = Tree::new();
    for deb in &debs {
        add_deb(&mut tree, deb)?;
    }
    add_base_files(&mut tree)?;
    add_parents(&mut tree);
    let pins = parse_pins(&fs::read_to_string(pin_file())?)?;
    let packages =
        pins.iter().map(|pin| format!("{}={}", pin.name, pin.version)).collect::<Vec<_>>();
    Ok((layer(&tree)?, packages.join(" ")))
}

/// Builds every image in `specs` for every platform into `<out>/<name>/` (an OCI layout, written
/// afresh); `version` is the tag recorded in `index.json` and the images' labels.
pub fn build(
    specs: &[ImageSpec],
    platforms: &[Platform],
    version: &str,
    out: &Path,
) -> anyhow::Result<Vec<BuiltImage>> {
    if platforms.is_empty() {
        bail!("no platform to build for");
    }
    let mut bases = BTreeMap::new();
    for platform in platforms {
        if !matches!(platform.arch.as_str(), "amd64" | "arm64") {
            bail!("platform {:?}: only amd64 and arm64 are built", platform.arch);
        }
        bases.insert(platform.arch.clone(), base_layer(&platform.arch)?);
    }
    let mut built = Vec::new();
    for spec in specs {
        let mut blobs = Blobs::default();
        let mut manifests = Vec::new();
        let mut by_arch = BTreeMap::new();
        for platform in platforms {
            let (base, packages) = &bases[&platform.arch];
            let source = platform.binaries.join(spec.binary);
            let binary = fs::read(&source).with_context(|| {
                format!("reading {} (build it first: docs/images.md)", source.display())
            })?;
            let mut tree = Tree::new();
            tree.insert(
                format!("usr/local/bin/{}", spec.binary),
                Node::File { mode: 0o755, data: binary },
            );
            add_parents(&mut tree);
            let app = layer(&tree)?;
            let labels = json!({
                "org.opencontainers.image.title": spec.name,
                "org.opencontainers.image.description": spec.description,
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.source": "https://github.com/chaperone-dev/chaperone",
                "org.opencontainers.image.licenses": "Apache-2.0",
                "dev.chaperone.debian-packages": packages,
            });
            let config = json!({
                "architecture": platform.arch,
                "os": "linux",
                "config": {
                    "User": format!("{NONROOT}:{NONROOT}"),
                    "Entrypoint": [format!("/usr/local/bin/{}", spec.binary)],
                    "Env": [
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                    ],
                    "WorkingDir": "/home/nonroot",
                    "Labels": labels,
                },
                "rootfs": {"type": "layers", "diff_ids": [base.diff_id, app.diff_id]},
            });
            let config = blobs.add_json("application/vnd.oci.image.config.v1+json", &config)?;
            let base_descriptor =
                blobs.add("application/vnd.oci.image.layer.v1.tar+gzip", base.gzip.clone());
            let app_descriptor = blobs.add("application/vnd.oci.image.layer.v1.tar+gzip", app.gzip);
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [base_descriptor, app_descriptor],
                "annotations": {"org.opencontainers.image.version": version},
            });
            let mut descriptor =
                blobs.add_json("application/vnd.oci.image.manifest.v1+json", &manifest)?;
            by_arch
                .insert(platform.arch.clone(), descriptor["digest"].as_str().unwrap_or("").into());
            descriptor["platform"] = json!({"architecture": platform.arch, "os": "linux"});
            manifests.push(descriptor);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
            "annotations": {"org.opencontainers.image.version": version},
        });
        let mut top = blobs.add_json("application/vnd.oci.image.index.v1+json", &index)?;
        let digest = top["digest"].as_str().unwrap_or_default().to_owned();
        top["annotations"] = json!({"org.opencontainers.image.ref.name": version});
        let layout = out.join(spec.name);
        if layout.exists() {
            fs::remove_dir_all(&layout)
                .with_context(|| format!("removing the previous {}", layout.display()))?;
        }
        let blob_dir = layout.join("blobs/sha256");
        fs::create_dir_all(&blob_dir)?;
        for (blob_digest, data) in &blobs.0 {
            let hex = blob_digest.trim_start_matches("sha256:");
            fs::write(blob_dir.join(hex), data)?;
        }
        fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index_json = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [top],
        });
        fs::write(layout.join("index.json"), serde_json::to_vec(&index_json)?)?;
        built.push(BuiltImage { name: spec.name.into(), layout, digest, manifests: by_arch });
    }
    Ok(built)
}

/// Builds the three images and writes `<out>/digests.json` (`{"<image>": "sha256:..."}`, what
/// the release pipeline writes into the chart's values).
pub fn build_and_record(
    platforms: &[Platform],
    version: &str,
    out: &Path,
) -> anyhow::Result<Vec<BuiltImage>> {
    let built = build(&IMAGES, platforms, version, out)?;
    let digests: BTreeMap<&str, &str> =
        built.iter().map(|image| (image.name.as_str(), image.digest.as_str())).collect();
    fs::write(out.join("digests.json"), serde_json::to_vec_pretty(&digests)?)?;
    Ok(built)
}

/// What a platform's image says to run: its user and entrypoint.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The root filesystem.
    pub root: PathBuf,
    /// `uid:gid` from the config.
    pub user: String,
    /// The config's entrypoint.
    pub entrypoint: Vec<String>,
}

fn read_blob(layout: &Path, digest: &str) -> anyhow::Result<Vec<u8>> {
    let hex = digest.strip_prefix("sha256:").context("digest is not sha256")?;
    let path = layout.join("blobs/sha256").join(hex);
    let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if sha256(&data) != digest {
        bail!("{} does not match its digest", path.display());
    }
    Ok(data)
}

/// Unpacks the `arch` image of an OCI layout (as [`build`] writes it) into `root`, checking
/// every blob against its digest; returns the config's user and entrypoint.
pub fn unpack(layout: &Path, arch: &str, root: &Path) -> anyhow::Result<Unpacked> {
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
    let top = index["manifests"][0]["digest"].as_str().context("index.json names no manifest")?;
    let image_index: Value = serde_json::from_slice(&read_blob(layout, top)?)?;
    let manifest_digest = image_index["manifests"]
        .as_array()
        .and_then(|manifests| {
            manifests.iter().find(|m| m["platform"]["architecture"].as_str() == Some(arch))
        })
        .and_then(|m| m["digest"].as_str())
        .with_context(|| format!("{} has no {arch} image", layout.display()))?;
    let manifest: Value = serde_json::from_slice(&read_blob(layout, manifest_digest)?)?;
    let config_digest = manifest["config"]["digest"].as_str().context("manifest without config")?;
    let config: Value = serde_json::from_slice(&read_blob(layout, config_digest)?)?;
    fs::create_dir_all(root)?;
    for layer in manifest["layers"].as_array().context("manifest without layers")? {
        let digest = layer["digest"].as_str().context("layer without digest")?;
        let gzip = read_blob(layout, digest)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzip.as_slice()));
        archive.set_preserve_permissions(true);
        // SAFETY: geteuid has no preconditions. Only root may give files to other users.
        archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
        archive.set_overwrite(true);
        archive.unpack(root).with_context(|| format!("unpacking layer {digest}"))?;
    }
    let user = config["config"]["User"].as_str().unwrap_or("0:0").to_owned();
    let entrypoint = config["config"]["Entrypoint"]
        .as_array()
        .map(|args| args.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(Unpacked { root: root.to_path_buf(), user, entrypoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_and_bad_lines_named() {
        let pins = parse_pins("# c\nlibc6 2.36-9 any\n\ntzdata 2026f all # tz\n").unwrap();
        assert_eq!(pins.len(), 2);
        assert!(!pins[0].arch_all && pins[1].arch_all);
        assert_eq!(pins[1].version, "2026f");
        let error = parse_pins("libc6 2.36-9\n").unwrap_err().to_string();
        assert!(error.contains("line 1: expected `package version any|all`"), "{error}");
        let error = parse_pins("libc6 2.36-9 x86\n").unwrap_err().to_string();
        assert!(error.contains("architecture must be any or all"), "{error}");
        assert!(parse_pins("# nothing\n").is_err());
    }

    #[test]
    fn paths_are_normalized_and_never_leave_the_root() {
        assert_eq!(normalize(Path::new("./usr/lib/")).unwrap(), "usr/lib");
        assert_eq!(normalize(Path::new("/etc/passwd")).unwrap(), "etc/passwd");
        assert!(normalize(Path::new("./usr/../../etc")).is_err());
    }

    #[test]
    fn layers_do_not_depend_on_insertion_order() {
        let file = |text: &str| Node::File { mode: 0o644, data: text.as_bytes().to_vec() };
        let mut one = Tree::new();
        one.insert("b/y".into(), file("y"));
        one.insert("a/x".into(), file("x"));
        add_parents(&mut one);
        let mut two = Tree::new();
        two.insert("a/x".into(), file("x"));
        two.insert("b/y".into(), file("y"));
        add_parents(&mut two);
        let (one, two) = (layer(&one).unwrap(), layer(&two).unwrap());
        assert_eq!(sha256(&one.gzip), sha256(&two.gzip));
        assert_eq!(one.diff_id, two.diff_id);
        let mut other = Tree::new();
        other.insert("a/x".into(), file("changed"));
        add_parents(&mut other);
        assert_ne!(layer(&other).unwrap().diff_id, one.diff_id);
    }
}
