//! The command line, declared once with clap; every flag that configures a connection or
//! the daemon has an environment twin.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Airlock: sandboxes for AI agents, with first-class file transfer.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (as root).
    #[command(
        after_help = "Example:\n  sudo airlock serve --listen 127.0.0.1:7711 --home /var/lib/airlock"
    )]
    Serve(ServeArgs),
    /// Serve a root filesystem's files to a gateway (inside a pod, as its entrypoint's
    /// wrapper or as a sidecar).
    #[command(
        after_help = "Example:\n  airlock agent --listen 0.0.0.0:7712 --root / --secret-file /run/airlock/secret"
    )]
    Agent(AgentArgs),
    /// Create a sandbox and print its id.
    #[command(
        after_help = "Examples:\n  airlock create\n  airlock create --memory 1g --disk 2g --env MODE=ci\n  airlock create --no-start --file ./config.toml:/etc/app/config.toml:ro\n  airlock create --upload ./repo:/workspace/repo --file ./ci.env:/etc/ci.env:ro"
    )]
    Create(CreateArgs),
    /// List sandboxes.
    Ls(JsonFlag),
    /// Show one sandbox in full.
    Inspect(IdArgs),
    /// Start a created or stopped sandbox.
    Start(IdArgs),
    /// Stop a running sandbox (its files stay).
    Stop(IdArgs),
    /// Delete sandboxes and everything in them.
    Rm(RmArgs),
    /// Run a command in a sandbox, streaming its output; exits with its exit code.
    #[command(
        after_help = "Examples:\n  airlock exec ID -- python3 -c 'print(1+1)'\n  airlock exec ID --cwd /workspace --env CI=1 -- make test\n  echo data | airlock exec ID -i -- wc -c"
    )]
    Exec(ExecArgs),
    /// Manage root filesystem templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Mint, list and revoke tokens: tenants' API tokens (admin) and sandbox tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a signed URL for one file (ID:PATH): curl or a browser use it with no header
    /// until it expires.
    #[command(
        after_help = "Examples:\n  curl -o report.pdf \"$(airlock sign ID:/workspace/report.pdf)\"\n  curl -T data.csv \"$(airlock sign --put --ttl 600 ID:/workspace/data.csv)\""
    )]
    Sign(SignArgs),
    /// Copy files and directories between this machine and a sandbox (like `docker cp`).
    #[command(after_help = "\
Either SRC or DST is ID:PATH (PATH absolute inside the sandbox).

Examples:
  airlock cp ./repo ID:/workspace          # ./repo becomes /workspace/repo
  airlock cp ./repo/. ID:/workspace/app    # the contents of ./repo go into /workspace/app
  airlock cp -a --gitignore ./repo ID:/workspace
  airlock cp ID:/workspace/coverage ./out  # a directory comes back as one tar stream
  airlock cp big.iso ID:/data/             # files over 8 MiB resume if interrupted: run it again

A directory travels as one tar stream; symlinks stay symlinks. Modes are kept; -a also
keeps modification times.")]
    Cp(CpArgs),
    /// Look at and change files in a sandbox.
    #[command(subcommand)]
    Fs(FsCommand),
    /// Print changes under a sandbox directory as they happen, one event a line.
    #[command(after_help = "Example:\n  airlock watch ID:/workspace --recursive")]
    Watch(WatchArgs),
    /// Mirror a local directory into a sandbox (or back), moving only what changed.
    #[command(after_help = "\
Files whose size or modification time differ are sent, all in one tar stream.

Examples:
  airlock sync ./repo ID:/workspace/repo            # push changes
  airlock sync ./repo ID:/workspace/repo --delete   # and remove what is gone locally
  airlock sync ./repo ID:/workspace/repo --back     # pull changes made in the sandbox")]
    Sync(SyncArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  airlock completions bash > /etc/bash_completion.d/airlock")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// A local path, or ID:PATH.
    pub src: String,
    /// A local path, or ID:PATH.
    pub dst: String,
    /// Keep modification times too (modes are always kept).
    #[arg(long, short = 'a')]
    pub archive: bool,
    /// Leave out local paths matching this glob (repeatable), e.g. 'target/' or '*.log'.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Leave out what the local .gitignore files ignore.
    #[arg(long)]
    pub gitignore: bool,
    /// No progress bar even on a terminal.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The local directory.
    pub local: String,
    /// ID:DIR in the sandbox.
    pub remote: String,
    /// Also remove what exists only on the receiving side.
    #[arg(long)]
    pub delete: bool,
    /// Pull: make the local directory like the sandbox's.
    #[arg(long)]
    pub back: bool,
    /// Compare files of equal size by sha256 instead of mtime (reads every such file on
    /// both sides).
    #[arg(long, short = 'c')]
    pub checksum: bool,
    /// Leave out local paths matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Leave out what the local .gitignore files ignore.
    #[arg(long)]
    pub gitignore: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// ID:PATH of the file.
    pub target: String,
    /// Sign an upload (PUT) instead of a download (GET).
    #[arg(long)]
    pub put: bool,
    /// Lifetime in seconds (at most a week).
    #[arg(long, default_value_t = 300)]
    pub ttl: u64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// ID:PATH of a directory.
    pub target: String,
    /// Include everything below it.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// List a directory (ID:PATH).
    Ls {
        target: String,
        /// Levels to descend.
        #[arg(long, short = 'd', default_value_t = 1)]
        depth: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Describe one path (ID:PATH); symlinks are not followed.
    Stat {
        target: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Make a directory and its parents (ID:PATH).
    Mkdir {
        target: String,
        /// Permission bits, octal.
        #[arg(long)]
        mode: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Remove a path (ID:PATH).
    Rm {
        target: String,
        /// Remove a directory and everything in it.
        #[arg(long, short = 'r')]
        recursive: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Rename within one sandbox: ID:FROM TO.
    Mv {
        target: String,
        to: String,
        /// Replace an existing TO.
        #[arg(long, short = 'f')]
        force: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print a file's bytes (ID:PATH) to standard output.
    Cat {
        target: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Where the daemon is; shared by every client verb.
#[derive(Debug, Args, Clone)]
pub struct Connection {
    /// Daemon address.
    #[arg(long, env = "AIRLOCK_URL", global = true, hide_env_values = true)]
    pub url: Option<String>,
    /// Bearer token: the admin's, a tenant's API token, or a sandbox token (default: the
    /// admin token in the daemon's home).
    #[arg(long, env = "AIRLOCK_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// `airlock agent`'s options.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address to listen on (the bound address is printed once it listens).
    #[arg(long, env = "AIRLOCK_AGENT_LISTEN", default_value = "0.0.0.0:7712")]
    pub listen: String,
    /// The directory served as the sandbox's root.
    #[arg(long, env = "AIRLOCK_AGENT_ROOT", default_value = "/")]
    pub root: PathBuf,
    /// A file holding the secret every request must present (at least 16 bytes; the
    /// gateway keeps it in a Kubernetes Secret mounted into the pod).
    #[arg(long, env = "AIRLOCK_AGENT_SECRET_FILE")]
    pub secret_file: PathBuf,
    /// Run commands chrooted into the root: for a sidecar serving another container's
    /// root (`--root /proc/PID/root` with the pod's process namespace shared).
    #[arg(long, env = "AIRLOCK_AGENT_CHROOT")]
    pub chroot: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AIRLOCK_LISTEN", default_value = "127.0.0.1:7711")]
    pub listen: String,
    /// Directory for all state [default: /var/lib/airlock as root, else ~/.local/share/airlock].
    #[arg(long, env = "AIRLOCK_HOME")]
    pub home: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "AIRLOCK_LOG_JSON")]
    pub log_json: bool,
    /// Leave the kernel's cgroup moves as they are. By default the daemon, while it runs,
    /// mounts a cgroup hierarchy with `favordynmods`: a command then starts about 10 ms
    /// sooner, and every fork and exit on the machine costs a little more.
    #[arg(long, env = "AIRLOCK_SLOW_CGROUP_MOVES")]
    pub slow_cgroup_moves: bool,
    /// Remove resumable uploads untouched for this long (e.g. 30m, 24h).
    #[arg(long, env = "AIRLOCK_UPLOAD_EXPIRY", default_value = "24h", value_parser = humantime::parse_duration)]
    pub upload_expiry: std::time::Duration,
    /// Serve at most this many connections at once; more wait to be accepted.
    #[arg(long, env = "AIRLOCK_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Drop a connection whose request head has not arrived whole within this.
    #[arg(long, env = "AIRLOCK_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Fail a request whose body stalls, or drop a client that stops reading, for this long.
    #[arg(long, env = "AIRLOCK_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Each tenant may hold this many watches at once (429 past it).
    #[arg(long, env = "AIRLOCK_MAX_WATCHES_PER_TENANT", default_value_t = 64)]
    pub max_watches_per_tenant: usize,
    /// Each tenant may run this many commands at once (429 past it).
    #[arg(long, env = "AIRLOCK_MAX_EXECS_PER_TENANT", default_value_t = 64)]
    pub max_execs_per_tenant: usize,
    /// Each tenant may stream this many uploads at once (429 past it).
    #[arg(long, env = "AIRLOCK_MAX_UPLOADS_PER_TENANT", default_value_t = 64)]
    pub max_uploads_per_tenant: usize,
    /// The audit log: one JSON line per mutating call and per transfer [default: HOME/audit.log].
    #[arg(long, env = "AIRLOCK_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit log when it passes this many MiB.
    #[arg(long, env = "AIRLOCK_AUDIT_LOG_MAX_MB", default_value_t = 64)]
    pub audit_log_max_mb: u64,
    /// Rotated audit logs kept (audit.log.1 is the newest).
    #[arg(long, env = "AIRLOCK_AUDIT_LOG_KEEP", default_value_t = 5)]
    pub audit_log_keep: usize,
    /// Accept OIDC bearer JWTs from this issuer (its URL exactly as tokens name it in `iss`).
    #[arg(long, env = "AIRLOCK_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The audience OIDC tokens must name in `aud`.
    #[arg(long, env = "AIRLOCK_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The OIDC claim that names the caller's tenant.
    #[arg(long, env = "AIRLOCK_OIDC_TENANT_CLAIM", default_value = "sub")]
    pub oidc_tenant_claim: String,
    /// Keep N started sandboxes of TEMPLATE ready, so a create that matches claims one at
    /// once (repeatable: `--warm-pool host=4 --warm-pool py=2`).
    #[arg(long = "warm-pool", value_name = "TEMPLATE=N", value_parser = warm_pool)]
    pub warm_pools: Vec<(String, usize)>,
    /// What runs the sandboxes: this machine's engine, or pods in a Kubernetes cluster.
    #[arg(long, env = "AIRLOCK_BACKEND", value_enum, default_value = "local")]
    pub backend: BackendKind,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Where sandboxes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Local,
    Kubernetes,
}

/// The Kubernetes backend's settings (used with `--backend kubernetes`).
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// The namespace sandboxes' pods and Secrets go in.
    #[arg(
        long,
        env = "AIRLOCK_KUBE_NAMESPACE",
        default_value = "airlock-sandboxes"
    )]
    pub kube_namespace: String,
    /// The image of a sandbox created without a template.
    #[arg(long, env = "AIRLOCK_KUBE_IMAGE", default_value = "debian:12-slim")]
    pub kube_image: String,
    /// A template and the image it names (repeatable: `--kube-template py=python:3.12`).
    #[arg(long = "kube-template", value_name = "NAME=IMAGE", value_parser = kube_template)]
    pub kube_templates: Vec<(String, String)>,
    /// An image with the `airlock` binary at /usr/local/bin/airlock, copied into each pod.
    #[arg(
        long,
        env = "AIRLOCK_KUBE_AGENT_IMAGE",
        default_value = "airlock:latest"
    )]
    pub kube_agent_image: String,
    /// Run sandboxes' pods under this RuntimeClass (gVisor's or Kata's, say).
    #[arg(long, env = "AIRLOCK_RUNTIME_CLASS")]
    pub runtime_class: Option<String>,
    /// The port the agent listens on inside each pod.
    #[arg(long, env = "AIRLOCK_KUBE_AGENT_PORT", default_value_t = 7712)]
    pub kube_agent_port: u16,
    /// How long a new sandbox's pod may take to run and answer.
    #[arg(long, env = "AIRLOCK_KUBE_READY_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub kube_ready_timeout: std::time::Duration,
    /// A kubeconfig file [default: $KUBECONFIG, ~/.kube/config, then the pod's service account].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// What holds each sandbox: agent-sandbox `Sandbox` objects where its CRDs are
    /// installed and bare pods elsewhere (auto), or always one of them.
    #[arg(long, env = "AIRLOCK_KUBE_OBJECTS", value_enum, default_value = "auto")]
    pub kube_objects: KubeObjects,
}

/// `--kube-objects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeObjects {
    Auto,
    Pods,
    Sandboxes,
}

/// `NAME=IMAGE`.
fn kube_template(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(name, image)| !name.is_empty() && !image.is_empty())
        .map(|(name, image)| (name.to_owned(), image.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=IMAGE"))
}

/// `TEMPLATE=N`.
fn warm_pool(text: &str) -> Result<(String, usize), String> {
    let (template, size) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not TEMPLATE=N"))?;
    let size = size
        .parse()
        .map_err(|_| format!("{size:?} is not a number of sandboxes"))?;
    Ok((template.to_owned(), size))
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Sandbox id.
    pub id: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Sandbox ids.
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Template name (`airlock template ls`).
    #[arg(long, short = 't', default_value = "host")]
    pub template: String,
    /// Environment for every command, K=V (repeatable).
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Label, K=V (repeatable).
    #[arg(long = "label", short = 'l', value_name = "K=V")]
    pub labels: Vec<String>,
    /// Memory limit: 512m, 2g, or MiB.
    #[arg(long, short = 'm')]
    pub memory: Option<String>,
    /// Disk limit: 512m, 10g, or MiB.
    #[arg(long)]
    pub disk: Option<String>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Process limit.
    #[arg(long)]
    pub pids: Option<u64>,
    /// Delete the sandbox this many seconds after creation.
    #[arg(long, value_name = "SECS")]
    pub ttl: Option<u64>,
    /// Leave it `created` so files can be added before anything runs.
    #[arg(long)]
    pub no_start: bool,
    /// Inject a small local file: SRC:DST, or SRC:DST:ro for read-only (repeatable).
    #[arg(long = "file", short = 'f', value_name = "SRC:DST[:ro]")]
    pub files: Vec<String>,
    /// Upload a file or directory of any size before the sandbox starts: SRC or SRC:DST
    /// (default DST: /workspace/NAME) (repeatable).
    #[arg(long = "upload", short = 'u', value_name = "SRC[:DST]")]
    pub uploads: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Sandbox id.
    pub id: String,
    /// Working directory inside the sandbox.
    #[arg(long, short = 'w')]
    pub cwd: Option<String>,
    /// Extra environment, K=V (repeatable).
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// Kill the command's whole process tree after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Send this terminal's standard input to the command.
    #[arg(long = "stdin", short = 'i')]
    pub stdin: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint an API token for a tenant (admin only); prints the secret once.
    #[command(
        after_help = "Example:\n  airlock token create --tenant team-a --name ci --ttl 86400"
    )]
    Create {
        /// The tenant it acts as: [a-z0-9._-], not `admin`.
        #[arg(long)]
        tenant: String,
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// Lifetime in seconds (none: no expiry).
        #[arg(long)]
        ttl: Option<u64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List API tokens, without secrets (admin only).
    Ls(JsonFlag),
    /// Revoke an API token at once (admin only).
    Rm {
        /// Token id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Mint a token for one sandbox: read, or read and write; prints the secret once.
    #[command(after_help = "Example:\n  airlock token sandbox ID --access read --ttl 3600")]
    Sandbox {
        /// Sandbox id.
        id: String,
        /// `read` or `write`.
        #[arg(long, default_value = "read")]
        access: String,
        /// Lifetime in seconds (none: until the sandbox is deleted).
        #[arg(long)]
        ttl: Option<u64>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List templates.
    Ls(JsonFlag),
    /// Register a root filesystem from a directory or a .tar file.
    #[command(after_help = "Example:\n  airlock template add alpine ./alpine-rootfs/")]
    Add {
        /// Template name: [a-z0-9._-].
        name: String,
        /// A directory or a tar archive.
        path: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a registered template.
    Rm {
        /// Template name.
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}
