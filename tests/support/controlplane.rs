//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager
//! (with the job, garbage-collector, namespace and service-account controllers), started from
//! the binaries that `hack/control-plane.sh` provides (`KUBEBUILDER_ASSETS`, or a cached build of
//! Debian's Kubernetes 1.20 source package).
//!
//! Everything lives in a temporary directory. The processes are killed when the
//! [`ControlPlane`] is dropped and, because they are started with `PR_SET_PDEATHSIG` from a
//! thread that lives as long as the process, also when the test process exits or dies.
//!
//! Shared by the integration tests (`tests/support/mod.rs`) and `make testenv`
//! (`examples/testenv.rs`).

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long each component may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running control plane.
pub struct ControlPlane {
    /// Directory with certificates, kubeconfig, etcd data and the components' logs.
    pub dir: PathBuf,
    /// Admin kubeconfig (token of a `system:masters` user).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`
    pub server: String,
    /// PEM of the CA that signed the apiserver's serving certificate.
    pub ca_pem: String,
    /// Token of the admin user.
    pub admin_token: String,
    children: Vec<(String, Child)>,
    keep_dir: bool,
}

impl ControlPlane {
    /// Start etcd, kube-apiserver and kube-controller-manager and wait until they serve.
    pub fn start() -> Result<ControlPlane, String> {
        let bins = binaries_dir()?;
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(format!(
            "quarks-testenv-{}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cp = ControlPlane {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir,
            server: String::new(),
            ca_pem: String::new(),
            admin_token: String::new(),
            children: Vec::new(),
            keep_dir: std::env::var_os("QUARKS_TESTENV_KEEP").is_some(),
        };
        cp.boot(&bins)?;
        Ok(cp)
    }

    fn boot(&mut self, bins: &Path) -> Result<(), String> {
        let certs = Certs::generate()?;
        let dir = self.dir.clone();
        let write = |name: &str, body: &str| -> Result<PathBuf, String> {
            let p = dir.join(name);
            fs::write(&p, body).map_err(|e| format!("write {}: {e}", p.display()))?;
            Ok(p)
        };
        let ca = write("ca.crt", &certs.ca_pem)?;
        let serving_crt = write("apiserver.crt", &certs.serving_pem)?;
        let serving_key = write("apiserver.key", &certs.serving_key_pem)?;
        let sa_key = write("sa.key", &certs.sa_key_pem)?;
        let sa_pub = write("sa.pub", &certs.sa_pub_pem)?;
        self.admin_token = certs.admin_token.clone();
        write(
            "tokens.csv",
            &format!("{},admin,admin-uid,system:masters\n", self.admin_token),
        )?;
        self.ca_pem = certs.ca_pem.clone();

        let etcd_port = free_port()?;
        let etcd_peer = free_port()?;
        let api_port = free_port()?;
        self.server = format!("https://127.0.0.1:{api_port}");
        write(
            "admin.kubeconfig",
            &kubeconfig_yaml(&self.server, &self.ca_pem, &self.admin_token),
        )?;

        let etcd_data = self.dir.join("etcd");
        let mut etcd = Command::new(bins.join("etcd"));
        etcd.args([
            "--name=default",
            &format!("--data-dir={}", etcd_data.display()),
            &format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            &format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
            "--logger=zap",
            "--log-level=warn",
        ]);
        self.spawn("etcd", etcd)?;

        let mut api = Command::new(bins.join("kube-apiserver"));
        api.args([
            &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={api_port}"),
            "--insecure-port=0",
            &format!("--cert-dir={}", self.dir.join("apiserver-certs").display()),
            &format!("--tls-cert-file={}", serving_crt.display()),
            &format!("--tls-private-key-file={}", serving_key.display()),
            &format!("--client-ca-file={}", ca.display()),
            &format!(
                "--token-auth-file={}",
                self.dir.join("tokens.csv").display()
            ),
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            &format!("--service-account-key-file={}", sa_pub.display()),
            &format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            // No endpoints for the `kubernetes` service: they would point at loopback.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=0",
        ]);
        self.spawn("kube-apiserver", api)?;
        let kc = self.kubeconfig.clone();
        self.wait_for("kube-apiserver /readyz", || {
            kubectl(&kc, &["get", "--raw", "/readyz", "--request-timeout=2s"]).is_ok()
        })?;

        let mut cm = Command::new(bins.join("kube-controller-manager"));
        cm.args([
            &format!("--kubeconfig={}", self.kubeconfig.display()),
            "--controllers=job,garbagecollector,namespace,serviceaccount,serviceaccount-token",
            &format!("--service-account-private-key-file={}", sa_key.display()),
            &format!("--root-ca-file={}", ca.display()),
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--port=0",
            "--secure-port=0",
            "--v=0",
        ]);
        self.spawn("kube-controller-manager", cm)?;
        // The service-account controllers are running once `default` has its token secret.
        self.wait_for(
            "kube-controller-manager (default ServiceAccount token)",
            || {
                kubectl(
                    &kc,
                    &[
                        "get",
                        "serviceaccount",
                        "default",
                        "-n",
                        "default",
                        "-o",
                        "jsonpath={.secrets[0].name}",
                    ],
                )
                .map(|out| !out.trim().is_empty())
                .unwrap_or(false)
            },
        )?;
        Ok(())
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<(), String> {
        let log =
            fs::File::create(self.dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = spawn_tied_to_process(cmd).map_err(|e| format!("start {name}: {e}"))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if ready() {
                return Ok(());
            }
            let exited = self.children.iter_mut().find_map(|(name, child)| {
                child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|status| (name.clone(), status))
            });
            if let Some((name, status)) = exited {
                return Err(format!(
                    "{name} exited ({status}) while waiting for {what}:\n{}",
                    self.log_tail(&name)
                ));
            }
            if start.elapsed() > READY_TIMEOUT {
                let last = self
                    .children
                    .last()
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                return Err(format!(
                    "{what} not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log_tail(&last)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of a component's log (`etcd`, `kube-apiserver`, `kube-controller-manager`).
    pub fn log_tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Write a kubeconfig for another identity (e.g. a ServiceAccount token) on this server.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.kubeconfig"));
        fs::write(&path, kubeconfig_yaml(&self.server, &self.ca_pem, token))
            .expect("write kubeconfig");
        path
    }

    /// Stop every component (also done on drop).
    pub fn stop(&mut self) {
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Run `kubectl --kubeconfig <kc> <args>`; Ok(stdout) on success, Err(stderr) otherwise.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Where etcd, kube-apiserver and kube-controller-manager are (building them the first time).
pub fn binaries_dir() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/control-plane.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed; see its output above", script.display()));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: testenv\n  user:\n    token: {token}\ncontexts:\n- name: \
         testenv\n  context:\n    cluster: testenv\n    user: testenv\n    namespace: default\ncurrent-context: testenv\n"
    )
}

struct Certs {
    ca_pem: String,
    serving_pem: String,
    serving_key_pem: String,
    sa_key_pem: String,
    sa_pub_pem: String,
    admin_token: String,
}

impl Certs {
    fn generate() -> Result<Certs, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let err = |e: rcgen::Error| e.to_string();
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "quarks-testenv-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "10.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ])
        .map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let serving = params.signed_by(&serving_key, &issuer).map_err(err)?;

        let sa_key = KeyPair::generate().map_err(err)?;
        let token_bytes: Vec<u8> = (0..24).map(|_| rand_byte()).collect();
        Ok(Certs {
            ca_pem: ca_cert.pem(),
            serving_pem: serving.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            sa_key_pem: sa_key.serialize_pem(),
            sa_pub_pem: sa_key.public_key_pem(),
            admin_token: token_bytes.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    let mut f = fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, &mut b).expect("read /dev/urandom");
    b[0]
}

/// A short random suffix.
pub fn unique() -> String {
    (0..4).map(|_| format!("{:02x}", rand_byte())).collect()
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Remove the directories of control planes whose test process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("quarks-testenv-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn `cmd` in its own process group so that it receives SIGKILL when this process ends.
/// `PR_SET_PDEATHSIG` fires
/// when the *thread* that forked the child exits, so all children are forked by one thread that
/// lives as long as the process.
pub fn spawn_tied_to_process(cmd: Command) -> std::io::Result<Child> {
    use std::sync::{Mutex, OnceLock};
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testenv-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // Its own process group: a Ctrl-C at the terminal (e.g. `make run`) reaches
                    // the tool and the operator it runs, which then stops with the control plane
                    // still up; the control plane goes after them.
                    cmd.process_group(0);
                    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static, so this loop only ends with the process.
            })
            .expect("spawn the testenv spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .expect("spawner lock")
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}
