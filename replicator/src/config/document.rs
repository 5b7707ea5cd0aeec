//! The commented configuration file: every section and key with its
//! documentation. `config.example.toml` and the file `config init` writes
//! are both rendered from here, so they carry the same comments.

/// One key: its documentation and an example value (a TOML literal).
pub struct KeyDoc {
    pub name: &'static str,
    pub doc: &'static str,
    pub example: &'static str,
    /// Set (not commented out) in `config.example.toml`.
    pub in_example: bool,
}

pub struct SectionDoc {
    pub name: &'static str,
    pub doc: &'static str,
    pub keys: &'static [KeyDoc],
}

const fn key(
    name: &'static str,
    doc: &'static str,
    example: &'static str,
    in_example: bool,
) -> KeyDoc {
    KeyDoc {
        name,
        doc,
        example,
        in_example,
    }
}

const PASSWORD_DOC: &str =
    "The account's password. Set exactly ONE of password (here, in this file:\n\
keep the file readable only by the service, chmod 600), password_file or\n\
password_env.";
const PASSWORD_FILE_DOC: &str =
    "A file holding only the password (one trailing newline is ignored).\n\
Relative paths are relative to this configuration file; ${NAME} is replaced by\n\
the environment variable NAME. Recommended under systemd: LoadCredential= in\n\
the unit (the password stays in a root-only file, the service reads a private\n\
copy) and \"${CREDENTIALS_DIRECTORY}/name\" here. A file other users can read is\n\
a warning, and `run` refuses it unless [security] allow_readable_secrets.";
const PASSWORD_ENV_DOC: &str =
    "The name of an environment variable holding the password (upper-case letters,\n\
digits and _). Unset is an error. Under systemd prefer password_file with\n\
LoadCredential=: Environment= values can be read over D-Bus by any local user.";

/// The file's header comment.
pub const HEADER: &str = "# ews-calendar-replicator configuration.
#
# Replicates calendar availability from Exchange (EWS) into the estos UCServer
# for users whose ProCall client is not logged on. Check this file with
#   ews-calendar-replicator check --config FILE
# Keys shown commented out (# key = ...) are optional or alternatives; the
# value shown is an example. Unknown keys are an error.";

pub const SECTIONS: &[SectionDoc] = &[
    SectionDoc {
        name: "ucserver",
        doc: "The estos UCServer the appointments are written to.",
        keys: &[
            key(
                "url",
                "The web service: https://host:7225 (TLS) or http://host:7224 (enable the web\nservice in the UCServer). Or the native port every UCServer has open:\ntcp+starttls://host:7222 (TLS via asnStartTLS) or tcp://host:7222. Without a\nport, 7225 (https), 7224 (http) or 7222 (tcp) is used.",
                "\"https://ucserver.example.com:7225\"",
                true,
            ),
            key(
                "username",
                "A UCServer administrator account: it lists the users and writes their\nappointments.",
                "\"Administrator\"",
                true,
            ),
            key("password", PASSWORD_DOC, "\"change-me\"", true),
            key("password_file", PASSWORD_FILE_DOC, "\"/etc/ews-calendar-replicator/ucserver.password\"", false),
            key("password_env", PASSWORD_ENV_DOC, "\"UCSERVER_PASSWORD\"", false),
            key(
                "ca_file",
                "(optional) PEM file with the CA certificate(s) that issued the UCServer's\ncertificate, trusted besides the public roots (an internal CA, or the\nUCServer's self-signed certificate).",
                "\"/etc/ews-calendar-replicator/ucserver-ca.pem\"",
                false,
            ),
            key(
                "ucsid",
                "(optional) The X-ucsid header of createsession: \"local\" (the default) for a\ndirect connection to the UCServer, the UCServer's UCSID behind UCWeb or\nUCConnect, \"\" to send none.",
                "\"local\"",
                false,
            ),
            key(
                "allow_plain_http",
                "(optional) true: accept an http:// url. Over http:// the administrator\npassword crosses the network in clear (in createsession's Basic header and\nagain in asnAdminLogin): anyone on the path can read it. Default false;\nuse https://host:7225 instead.",
                "false",
                false,
            ),
        ],
    },
    SectionDoc {
        name: "directory",
        doc: "Where the UCServer users' mailboxes are looked up: Active Directory over LDAP,\nor a static list for sites without AD.",
        keys: &[
            key(
                "kind",
                "\"ad\" (default): Active Directory; \"static\": a file of user-to-mailbox rows\n(then only `file` below applies).",
                "\"ad\"",
                true,
            ),
            key(
                "url",
                "(ad) The domain controller: ldap://dc.example.com (port 389) or\nldaps://dc.example.com (port 636).",
                "\"ldap://dc1.corp.example.com\"",
                true,
            ),
            key(
                "starttls",
                "(ad, optional) true: upgrade an ldap:// connection with StartTLS. Default\nfalse; without TLS the bind password travels readable.",
                "true",
                true,
            ),
            key(
                "bind_user",
                "(ad) The account that reads the directory, in UPN form\n(svc-replicator@corp.example.com); DOMAIN\\user is accepted too.",
                "\"svc-replicator@corp.example.com\"",
                true,
            ),
            key("password", PASSWORD_DOC, "\"change-me\"", false),
            key("password_file", PASSWORD_FILE_DOC, "\"${CREDENTIALS_DIRECTORY}/ldap.password\"", true),
            key("password_env", PASSWORD_ENV_DOC, "\"LDAP_BIND_PASSWORD\"", false),
            key(
                "base_dn",
                "(ad, optional) Where users are searched. Default: the whole domain (the\nRootDSE's defaultNamingContext).",
                "\"OU=Staff,DC=corp,DC=example,DC=com\"",
                false,
            ),
            key(
                "user_filter",
                "(ad, optional) LDAP filter selecting users. Default: enabled person accounts,\n(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
                "\"(&(objectCategory=person)(objectClass=user))\"",
                false,
            ),
            key(
                "include_group",
                "(ad, optional) Only members of this group (its DN; nested membership counts).",
                "\"CN=Calendar Replication,OU=Groups,DC=corp,DC=example,DC=com\"",
                false,
            ),
            key(
                "exclude_group",
                "(ad, optional) Nobody who is a member of this group (its DN; nested\nmembership counts).",
                "\"CN=No Calendar Replication,OU=Groups,DC=corp,DC=example,DC=com\"",
                false,
            ),
            key(
                "ca_file",
                "(ad, optional) PEM file with the CA that issued the domain controllers'\ncertificates, trusted besides the public roots.",
                "\"/etc/ews-calendar-replicator/corp-ca.pem\"",
                false,
            ),
            key(
                "max_entries",
                "(ad, optional) The most entries one search may return (1 to 10000000,\ndefault 200000); more stop it with an error, so that a wrong base or a\nhostile server cannot fill the memory.",
                "200000",
                false,
            ),
            key(
                "max_response_mb",
                "(ad, optional) The most the directory server may send on one connection\n(1 to 4096 MB, default 256); more close the connection with an error.",
                "256",
                false,
            ),
            key(
                "file",
                "(static) The file of user-to-mailbox rows: each row maps a UCServer user to\nthe mailbox address whose calendar is replicated. Relative paths are\nrelative to this configuration file.",
                "\"/etc/ews-calendar-replicator/users.csv\"",
                false,
            ),
        ],
    },
    SectionDoc {
        name: "exchange",
        doc: "The on-premises Exchange server, read over EWS.",
        keys: &[
            key(
                "url",
                "(optional) The EWS endpoint. Without it, the endpoint is found by\nautodiscover from the mailboxes' domain.",
                "\"https://mail.corp.example.com/EWS/Exchange.asmx\"",
                true,
            ),
            key(
                "version",
                "The EWS schema version requested: Exchange2007_SP1, Exchange2010,\nExchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1 (default),\nExchange2016 (also for Exchange 2019 and Subscription Edition, which\nadded no schema version: Exchange2019 and ExchangeSE are accepted for it).",
                "\"Exchange2013_SP1\"",
                true,
            ),
            key(
                "username",
                "The account that reads availability: DOMAIN\\user or user@domain.",
                "'CORP\\svc-replicator'",
                true,
            ),
            key("password", PASSWORD_DOC, "\"change-me\"", false),
            key("password_file", PASSWORD_FILE_DOC, "\"${CREDENTIALS_DIRECTORY}/exchange.password\"", true),
            key("password_env", PASSWORD_ENV_DOC, "\"EXCHANGE_PASSWORD\"", false),
            key(
                "auth",
                "HTTP authentication: \"ntlm\" (default); \"negotiate\": Kerberos first, NTLM\n\
only when Kerberos cannot start and allow_ntlm_fallback allows it (what\n\
Windows does); \"kerberos\": Kerberos only (for Exchange with NTLM turned off);\n\
\"basic\" (only over https). Kerberos needs the realm (kerberos_realm, or a\n\
user name user@domain), a KDC and the SPN registered for Exchange: see\n\
docs/kerberos.md; `check` says which mechanism authenticated.",
                "\"ntlm\"",
                true,
            ),
            key(
                "allow_ntlm_fallback",
                "(auth = \"negotiate\" only) true (default): NTLM is used when Kerberos cannot\n\
start (no realm, no KDC answers, the SPN is unknown, the account has no AES\n\
key, the server does not offer Negotiate), never after the server refused a\n\
Kerberos ticket; each fallback is a warning in the log and in `check`, and\n\
counted (ews_replicator_ntlm_fallbacks_total). false: Kerberos or nothing. The\n\
default is Windows' Negotiate behaviour and keeps configurations that used\n\
negotiate before Kerberos existed here working.",
                "true",
                false,
            ),
            key(
                "kerberos_kdc",
                "(negotiate, kerberos; optional) The KDC(s) to ask, as host or host:port\n\
(port 88 when left out), in order. Default: the DNS SRV records\n\
_kerberos._tcp.<realm>, then the domain controller of [directory] url.",
                "[\"dc1.corp.example.com\", \"dc2.corp.example.com:88\"]",
                false,
            ),
            key(
                "kerberos_realm",
                "(negotiate, kerberos; optional) The Kerberos realm: the domain's DNS name in\n\
upper case. Default: the domain of a user name written user@domain,\n\
upper-cased. Needed with a DOMAIN\\user name (the NetBIOS name is no realm).",
                "\"CORP.EXAMPLE.COM\"",
                false,
            ),
            key(
                "kerberos_spn",
                "(negotiate, kerberos; optional) The service principal name the ticket is asked\n\
for, used exactly as written (no DNS look-up). Default: HTTP/<host of the EWS\n\
URL>. Set it when the URL's host is a load-balanced name, an alias (CNAME) or\n\
an address: to the SPN registered on the account Exchange runs as (for a\n\
load-balanced name, the alternate service account).",
                "\"HTTP/mail.corp.example.com\"",
                false,
            ),
            key(
                "kerberos_kdc_timeout_seconds",
                "(negotiate, kerberos) One exchange with a KDC may take this long (1 to 120\n\
seconds, default 10); then the next KDC is asked.",
                "10",
                false,
            ),
            key(
                "impersonation",
                "true: read each mailbox as itself through Exchange impersonation (the account\nneeds the ApplicationImpersonation role): one request per mailbox instead of\nper 100, and the owner's view, so private items keep their subject (what\nprivate_appointments = \"full\" needs). false (default): read free/busy with\nthe account's own rights, 100 mailboxes per request.",
                "false",
                true,
            ),
            key(
                "ca_file",
                "(optional) PEM file with the CA that issued Exchange's certificate, trusted\nbesides the public roots.",
                "\"/etc/ews-calendar-replicator/corp-ca.pem\"",
                false,
            ),
            key(
                "max_concurrency",
                "Requests to Exchange at the same time (1 to 64, default 4); each asks for up\nto 100 mailboxes.",
                "4",
                true,
            ),
            key(
                "request_timeout_seconds",
                "One request to Exchange (authentication included) may take this long\n(1 to 600 seconds, default 100); a slower answer counts as failed and is tried\nagain, at most three times.",
                "100",
                false,
            ),
            key(
                "max_response_mb",
                "The largest answer accepted from Exchange (1 to 1024 MB, default 64); a\nlarger one fails the mailboxes of that request.",
                "64",
                false,
            ),
            key(
                "autodiscover_trusted_hosts",
                "(autodiscover only) Hosts outside the mailbox's domain that autodiscover may\nsend the account's credentials to when a redirect, an SRV record or a\nredirectUrl/redirectAddr answer names them; \"*.corp.local\" lists every host\nbelow corp.local. Other such hosts are asked without credentials and their\nanswers are not used (check lists them as refused). Service connection points\nin Active Directory are trusted as they are. Default: none.",
                "[\"mail.corp.local\"]",
                false,
            ),
            key(
                "notifications",
                "How calendar changes reach the UCServer besides the periodic cycle:\n\
\"auto\" (default): Exchange streaming notifications for every mailbox the\n\
account may subscribe to (with impersonation = true: the ApplicationImpersonation\n\
role; otherwise at least Reviewer on each calendar folder), so a change is\n\
written within seconds; a mailbox Exchange refuses stays on the cycle (check\n\
and status say which and why). \"streaming\": the same, but check fails when the\n\
account cannot subscribe. \"off\": the cycle only. auto is the default because\n\
the cycle stays the safety net either way: notifications only make changes\n\
arrive sooner, for a few held connections, and where Exchange refuses them\n\
nothing is lost.",
                "\"auto\"",
                true,
            ),
            key(
                "notification_connections",
                "Streaming connections (GetStreamingEvents) held open at once (1 to 100,\n\
default 3: Exchange on-premises' HangingConnectionLimit per account; more is\n\
refused with ErrorExceededConnectionCount). Each carries up to\n\
subscriptions_per_connection mailboxes; mailboxes beyond what the connections\n\
carry stay on the cycle. Raise it only with HangingConnectionLimit (EWS\n\
web.config).",
                "3",
                false,
            ),
            key(
                "notification_subscriptions",
                "Subscriptions of the account at once (1 to 1000000, default 5000: Exchange\n\
on-premises' EWSMaxSubscriptions throttling policy). Raise it only with the\n\
account's throttling policy.",
                "5000",
                false,
            ),
            key(
                "subscriptions_per_connection",
                "Mailboxes read on one streaming connection (1 to 200, default 200:\n\
Exchange's maximum per group).",
                "200",
                false,
            ),
            key(
                "notification_connection_timeout_minutes",
                "A streaming connection is closed by Exchange and opened again after this\n\
long (1 to 30 minutes, default 30, Exchange's maximum).",
                "30",
                false,
            ),
        ],
    },
    SectionDoc {
        name: "replication",
        doc: "What is replicated, and how often.",
        keys: &[
            key(
                "interval_minutes",
                "Minutes from the start of one cycle to the start of the next (1 to 1440,\ndefault 15). Cycles never overlap.",
                "15",
                true,
            ),
            key(
                "only_offline_users",
                "true (default): only users whose ProCall client is not logged on (a logged-on\nclient replicates its own calendar). false: all users.",
                "true",
                true,
            ),
            key(
                "window_days",
                "Days from now that are replicated (1 to 366, default 30, the UCServer's\nrecommendation).",
                "30",
                true,
            ),
            key(
                "private_appointments",
                "Private appointments: \"skip\" (default: not sent at all), \"times_only\" (sent as\nbusy blocks marked private, without subject, location or text) or \"full\"\n(sent like any other, subject included).",
                "\"skip\"",
                true,
            ),
            key(
                "busy_type_map",
                "How Exchange busy types the UCServer has no state for are shown. Keys: an\nExchange busy type (WorkingElsewhere, or a newer one) or `unknown` (any other\nunrecognised value). Values: \"free\", \"tentative\", \"busy\", \"out_of_office\".\nFree, Tentative, Busy and OOF always map to themselves; NoData is never\nwritten. Default: { WorkingElsewhere = \"free\", unknown = \"free\" }.",
                "{ WorkingElsewhere = \"free\", unknown = \"free\" }",
                true,
            ),
            key(
                "ucserver_writes_in_flight",
                "Appointment lists sent to the UCServer at once (1 to 64, default 8). Writes\nstart while Exchange is still being read; 1 writes one user after the other.",
                "8",
                true,
            ),
        ],
    },
    SectionDoc {
        name: "logging",
        doc: "Log output. Messages always go to stderr (the journal, under systemd).",
        keys: &[
            key(
                "level",
                "\"error\", \"warn\", \"info\" (default), \"debug\" or \"trace\".",
                "\"info\"",
                true,
            ),
            key(
                "directory",
                "(optional) Directory for log files. Default: $LOGS_DIRECTORY when set\n(systemd's LogsDirectory=), otherwise no log files.",
                "\"/var/log/ews-calendar-replicator\"",
                false,
            ),
            key(
                "max_file_size_mb",
                "A log file is rotated before it grows beyond this many megabytes (default 10).",
                "10",
                true,
            ),
            key(
                "max_files",
                "Log files kept, the current one included (default 5).",
                "5",
                true,
            ),
            key(
                "syslog",
                "true: warnings and errors also go to the system journal/syslog (/dev/log),\nas the estos service writes to the event log. Default false.",
                "false",
                true,
            ),
        ],
    },
    SectionDoc {
        name: "state",
        doc: "The state database (SQLite): per user what was last written, and the cycle\nhistory that `status` shows.",
        keys: &[key(
            "path",
            "(optional) The database file. Default: $STATE_DIRECTORY/state.sqlite under\nsystemd (StateDirectory=), /var/lib/ews-calendar-replicator/state.sqlite as\nroot, otherwise $XDG_DATA_HOME (or ~/.local/share)/ews-calendar-replicator/\nstate.sqlite. Relative paths are relative to this configuration file.",
            "\"/var/lib/ews-calendar-replicator/state.sqlite\"",
            false,
        )],
    },
    SectionDoc {
        name: "monitoring",
        doc: "Metrics, health and a status page over HTTP (off unless listen is set).",
        keys: &[key(
            "listen",
            "(optional) The address and port to serve /metrics (Prometheus), /healthz\n(200 or 503 with the reason) and / (a status page) on. Not set: no endpoints.\nA loopback address (127.0.0.1) is recommended: anyone who reaches the port\ncan read the user names and failure reasons shown, without authentication\n(never passwords or appointments). Another address is served with a warning.",
            "\"127.0.0.1:9464\"",
            false,
        )],
    },
    SectionDoc {
        name: "security",
        doc: "Exceptions to the checks that keep the passwords private.",
        keys: &[key(
            "allow_readable_secrets",
            "true: `run` starts even when a password_file is readable by every user\n(a warning remains). Default false: `run` refuses to start, naming the file.",
            "false",
            false,
        )],
    },
];

/// Every key as `section.key`.
pub fn all_keys() -> impl Iterator<Item = String> {
    SECTIONS
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| format!("{}.{}", s.name, k.name)))
}

/// The documentation of `section.key`.
pub fn key_doc(dotted: &str) -> Option<&'static KeyDoc> {
    let (section, name) = dotted.split_once('.')?;
    SECTIONS
        .iter()
        .find(|s| s.name == section)?
        .keys
        .iter()
        .find(|k| k.name == name)
}

fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// The commented file. `value(section, key)` gives the TOML literal of a
/// key that is set; the others are written commented out with their example.
pub fn render(value: &dyn Fn(&str, &str) -> Option<String>) -> String {
    let mut out = String::new();
    out.push_str(HEADER);
    out.push('\n');
    for section in SECTIONS {
        out.push('\n');
        out.push_str("# ");
        out.push_str(&"-".repeat(76));
        out.push('\n');
        comment(&mut out, section.doc);
        out.push('[');
        out.push_str(section.name);
        out.push_str("]\n");
        for key in section.keys {
            out.push('\n');
            comment(&mut out, key.doc);
            match value(section.name, key.name) {
                Some(literal) => out.push_str(&format!("{} = {literal}\n", key.name)),
                None => out.push_str(&format!("# {} = {}\n", key.name, key.example)),
            }
        }
    }
    out
}

/// `config.example.toml`.
pub fn render_example() -> String {
    render(&|section, name| {
        let doc = key_doc(&format!("{section}.{name}"))?;
        doc.in_example.then(|| doc.example.to_owned())
    })
}
