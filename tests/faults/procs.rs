//! The real processes a fault test starts, stops and kills: its own PostgreSQL cluster (initdb
//! into a temporary directory), its own `redis-server`, and `siaran serve` as built by cargo.
//! Each is stopped (killed) when dropped, and its directory removed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const JWT_SECRET: &str = "fault-secret-fault-secret-fault-secret-0123456789";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "siaran-fault-{kind}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: as root, its commands run as `postgres`.
fn pg_command(tool: &str) -> Command {
    let program = format!("{PG_BIN}/{tool}");
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &program]);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of the test's own.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
}

impl Postgres {
    pub fn start() -> Self {
        let dir = temp_dir("pg");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(&dir);
                    c
                },
                "chown",
            );
        }
        let mut initdb = pg_command("initdb");
        initdb
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(dir.join("data"));
        run(initdb, "initdb");
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.up();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections (after crash recovery).
    pub fn up(&self) {
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(start, "pg_ctl start");
    }

    /// Stops the server as a crash would: no checkpoint, recovery from the WAL on the next start.
    pub fn crash(&self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        run(stop, "pg_ctl stop -m immediate");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` of the test's own, without persistence (as Siaran's Redis may be).
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.up();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `siaran serve` as a separate process.
pub struct Siaran {
    pub port: u16,
    env: Vec<(String, String)>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Siaran {
    pub fn start(pg: &Postgres, redis: &Redis) -> Self {
        Self::start_with(pg, redis, &[])
    }

    /// Starts it with more environment (`extra` overrides the defaults).
    pub fn start_with(pg: &Postgres, redis: &Redis, extra: &[(&str, String)]) -> Self {
        let dir = temp_dir("siaran");
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), pg.url()),
            ("REDIS_URL".into(), redis.url()),
            ("SIARAN_HTTP_ADDR".into(), format!("127.0.0.1:{port}")),
            (
                "SIARAN_RTMP_ADDR".into(),
                format!("127.0.0.1:{}", free_port()),
            ),
            ("SIARAN_JWT_SECRET".into(), JWT_SECRET.into()),
            ("SIARAN_ENV".into(), "development".into()),
            (
                "SIARAN_HLS_DIR".into(),
                dir.join("hls").display().to_string(),
            ),
            (
                "SIARAN_MAIL_DIR".into(),
                dir.join("mail").display().to_string(),
            ),
            // Streams are made live in SQL, with no ingest behind them.
            ("SIARAN_INGEST_STALE_SECS".into(), "3600".into()),
            ("SIARAN_LOG_FORMAT".into(), "json".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut siaran = Self {
            port,
            env,
            dir,
            child: None,
        };
        siaran.up();
        siaran
    }

    pub fn up(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("siaran.log"))
            .expect("the server log");
        let child = Command::new(env!("CARGO_BIN_EXE_siaran"))
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting siaran serve");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// SIGKILL: no shutdown, no flush; whatever it was doing stops mid-way.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("siaran.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Siaran {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until something listens on the port (a minute at most).
fn wait_for_port(port: u16) {
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port} after a minute");
}
