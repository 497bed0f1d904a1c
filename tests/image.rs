//! The operator image without Docker (`make image-local`: `hack/image.py`) against the
//! Dockerfile, the one definition of the image's layout: `hack/image.py` reads the Dockerfile's
//! final stage, and this test parses that stage on its own and checks the image built from the
//! test's binary. Same entrypoint, user and ports; the binary at the Dockerfile's path; the
//! manifests run it as that user; and it runs from the image's root file system as that user
//! (so its shared libraries are all there), as the operator and as `persist-output`.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::manifests::{find, rendered};

/// The final stage of the Dockerfile.
#[derive(Debug, PartialEq)]
struct FinalStage {
    binary: String,
    /// Symlinks the builder stage makes (`ln -s`) that a directory COPY takes over.
    links: std::collections::BTreeMap<String, String>,
    user: String,
    entrypoint: Vec<String>,
    expose: Vec<String>,
}

fn dockerfile_final_stage() -> FinalStage {
    let text = std::fs::read_to_string(support::repo_root().join("Dockerfile")).unwrap();
    let mut stage = Vec::new();
    let mut made: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace().peekable();
        while let Some(w) = words.next() {
            if w == "ln" && words.peek() == Some(&"-s") {
                words.next();
                if let (Some(target), Some(link)) = (words.next(), words.next()) {
                    made.push((target.to_string(), link.to_string()));
                }
            }
        }
        if line.to_ascii_uppercase().starts_with("FROM ") {
            stage.clear();
        }
        stage.push(line);
    }
    let mut binary = None;
    let mut links = std::collections::BTreeMap::new();
    let mut user = None;
    let mut entrypoint = None;
    let mut expose = Vec::new();
    for line in stage {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let parts: Vec<&str> = rest.split_whitespace().collect();
        match word.to_ascii_uppercase().as_str() {
            "COPY" if rest.starts_with("--from=") && parts[parts.len() - 2].ends_with('/') => {
                let (src, dest) = (parts[parts.len() - 2], parts[parts.len() - 1]);
                for (target, link) in &made {
                    let (dir, name) = link.rsplit_once('/').unwrap();
                    if format!("{dir}/") == src {
                        links.insert(
                            format!("{}/{name}", dest.trim_end_matches('/')),
                            target.clone(),
                        );
                    }
                }
            }
            "COPY" if rest.starts_with("--from=") => binary = parts.last().map(|s| s.to_string()),
            "USER" => user = Some(rest.trim().to_string()),
            "ENTRYPOINT" => entrypoint = Some(serde_json::from_str(rest).unwrap()),
            "EXPOSE" => expose.extend(rest.split_whitespace().map(String::from)),
            _ => {}
        }
    }
    FinalStage {
        binary: binary.expect("COPY --from in the final stage"),
        links,
        user: user.expect("USER in the final stage"),
        entrypoint: entrypoint.expect("ENTRYPOINT in the final stage"),
        expose,
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn image_py() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(support::repo_root().join("hack/image.py"));
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_local_image_has_the_dockerfiles_layout_and_runs() {
    let stage = dockerfile_final_stage();
    // hack/image.py reads the same stage
    let layout = read_json_str(&run(image_py().arg("layout")));
    assert_eq!(layout["binary"], stage.binary.as_str());
    assert_eq!(layout["links"], serde_json::json!(stage.links));
    // the kubectl plugin is the binary under its plugin name
    assert_eq!(
        stage
            .links
            .get("/usr/local/bin/kubectl-qjob")
            .map(String::as_str),
        Some("quarks-job")
    );
    assert_eq!(layout["user"], stage.user.as_str());
    assert_eq!(layout["entrypoint"], serde_json::json!(stage.entrypoint));
    assert_eq!(layout["expose"], serde_json::json!(stage.expose));

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    let binary = env!("CARGO_BIN_EXE_quarks-job");
    run(image_py()
        .args([
            "operator",
            "--binary",
            binary,
            "--name",
            "test/quarks-job:t",
        ])
        .arg("--out")
        .arg(&archive));
    let unpacked = dir.path().join("archive");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let manifest = read_json(&unpacked.join("manifest.json"));
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["test/quarks-job:t"])
    );
    let config = read_json(&unpacked.join(manifest[0]["Config"].as_str().unwrap()));
    let config = &config["config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(stage.entrypoint));
    assert_eq!(config["User"], stage.user.as_str());
    let ports: Vec<String> = stage.expose.iter().map(|p| format!("{p}/tcp")).collect();
    let exposed: Vec<String> = config["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(exposed, ports);

    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(unpacked.join(layers[0].as_str().unwrap()))
        .arg("-C")
        .arg(&rootfs));
    let installed = rootfs.join(stage.binary.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(binary).unwrap(),
        "{} is the binary",
        stage.binary
    );

    // the manifests run the image as its user
    let objects = rendered();
    let security =
        &find(&objects, "Deployment", "quarks-job")["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(
        format!("{}:{}", security["runAsUser"], security["runAsGroup"]),
        stage.user
    );

    // it runs from its own root file system as that user: the operator, and persist-output
    let (uid, gid) = stage.user.split_once(':').unwrap();
    let in_image = |args: &[&str]| {
        run(Command::new("unshare")
            .arg(format!("--root={}", rootfs.display()))
            .args(["--setuid", uid, "--setgid", gid])
            .args(&stage.entrypoint)
            .args(args))
    };
    let version = in_image(&["version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let help = in_image(&["persist-output", "--help"]);
    assert!(help.contains("--output-dir"), "{help}");
    // the plugin, through its symlink (argv[0] decides)
    for (link, target) in &stage.links {
        let path = rootfs.join(link.trim_start_matches('/'));
        assert_eq!(
            std::fs::read_link(&path).unwrap().to_str(),
            Some(target.as_str()),
            "{link} is a symlink"
        );
    }
    let plugin = run(Command::new("unshare")
        .arg(format!("--root={}", rootfs.display()))
        .args(["--setuid", uid, "--setgid", gid])
        .args(["/usr/local/bin/kubectl-qjob", "--help"]));
    assert!(plugin.starts_with("Run QuarksJob errands"), "{plugin}");
}

fn read_json_str(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
