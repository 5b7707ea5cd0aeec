//! A site of simulators as a configuration file would describe it, so that
//! the demo and the `cycle_scale` benchmark assemble the engine through
//! [`assemble`](super::assemble) exactly as `run` does: the same parsing,
//! the same clients, the same adapters.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use url::Url;

use crate::config::{self, Config, LoadContext};
use crate::directory::DirectoryUser;
use crate::replication::PrivateAppointments;

/// The simulated UCServer and Exchange, and the directory that maps one to
/// the other.
pub struct SimulatedSite {
    pub ucserver_url: Url,
    pub ucserver_admin: String,
    pub ucserver_password: String,
    pub exchange_url: Url,
    /// `DOMAIN\user`.
    pub exchange_account: String,
    pub exchange_password: String,
    /// The CA of the Exchange simulator's certificate.
    pub exchange_ca_file: PathBuf,
    /// Written as a static list (`[directory] kind = "static"`).
    pub directory: Vec<DirectoryUser>,
    /// `exchange.max_concurrency`.
    pub max_concurrency: usize,
    pub private_appointments: PrivateAppointments,
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn quoted_path(path: &Path) -> String {
    quoted(&path.display().to_string())
}

impl SimulatedSite {
    /// Writes the static directory into `dir` and parses the configuration
    /// that names it (as `dir/config.toml`; nothing else is written).
    pub fn configure(&self, dir: &Path) -> Result<Config, String> {
        let mut users = String::new();
        for user in &self.directory {
            let _ = write!(
                users,
                "[[user]]\nobject_guid = {}\ndn = {}\n",
                quoted(&user.object_guid.to_string()),
                quoted(&user.dn)
            );
            if let Some(sam) = &user.sam_account_name {
                let _ = writeln!(users, "sam_account_name = {}", quoted(sam));
            }
            if let Some(smtp) = &user.primary_smtp {
                let _ = writeln!(users, "smtp = {}", quoted(smtp));
            }
        }
        let users_file = dir.join("users.toml");
        std::fs::write(&users_file, users)
            .map_err(|e| format!("cannot write {}: {e}", users_file.display()))?;
        let private = match self.private_appointments {
            PrivateAppointments::Skip => "skip",
            PrivateAppointments::TimesOnly => "times_only",
            PrivateAppointments::Full => "full",
        };
        // The simulators' passwords are made up for the run: in the file.
        let text = format!(
            "[ucserver]\nurl = {}\nallow_plain_http = {}\nusername = {}\npassword = {}\n\
             \n[directory]\nkind = \"static\"\nfile = {}\n\
             \n[exchange]\nurl = {}\nusername = {}\npassword = {}\nca_file = {}\nmax_concurrency = {}\n\
             \n[replication]\nprivate_appointments = {}\n\
             \n[state]\npath = {}\n",
            quoted(self.ucserver_url.as_str()),
            self.ucserver_url.scheme() == "http",
            quoted(&self.ucserver_admin),
            quoted(&self.ucserver_password),
            quoted_path(&users_file),
            quoted(self.exchange_url.as_str()),
            quoted(&self.exchange_account),
            quoted(&self.exchange_password),
            quoted_path(&self.exchange_ca_file),
            self.max_concurrency,
            quoted(private),
            quoted_path(&dir.join("state.sqlite")),
        );
        config::parse(
            &text,
            &dir.join("config.toml"),
            &LoadContext::with_vars([("HOME", dir.display().to_string())]),
        )
        .map_err(|e| format!("the simulators' configuration: {e}"))
    }
}
