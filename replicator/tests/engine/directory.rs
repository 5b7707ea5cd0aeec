//! The directory module against a real Samba Active Directory domain
//! controller on loopback, started by `scripts/test-dc.sh start` (CI: in
//! `.ci/run`). The seeded objects are listed at the top of that script.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use ews_calendar_replicator::directory::{
    AdDirectory, DirectoryError, DirectorySettings, DirectoryUser, Secret, UserDirectory,
    UserIndex, UserKey,
};
use ews_toolkit::autodiscover::AUTODISCOVER_SCP_KEYWORDS;

/// The connection settings `scripts/test-dc.sh env` prints.
struct TestDc {
    vars: HashMap<String, String>,
}

impl TestDc {
    fn get() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-dc.sh");
        let output = Command::new(&script)
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        if !output.status.success() {
            let why = String::from_utf8_lossy(&output.stderr);
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the test domain controller must run in CI (.ci/run starts it with scripts/test-dc.sh start): {why}");
            }
            panic!("these tests need the Samba test domain controller; start it with `scripts/test-dc.sh start` (installs Samba via apt when missing, needs root): {why}");
        }
        let vars = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Self { vars }
    }

    fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("scripts/test-dc.sh env printed no {name}"))
    }

    fn base_dn(&self) -> &str {
        self.var("BASE_DN")
    }

    fn ou(&self, name: &str) -> String {
        format!("OU={name},OU=Replicator Test,{}", self.base_dn())
    }

    fn group(&self, name: &str) -> String {
        format!("CN={name},{}", self.ou("Groups"))
    }

    /// The read-only service account over plain ldap://.
    fn settings(&self) -> DirectorySettings {
        DirectorySettings::new(
            self.var("LDAP_URL"),
            self.var("BIND_USER"),
            Secret::new(self.var("BIND_PASSWORD")),
        )
    }

    fn user_settings(&self, user: &str, password: &str) -> DirectorySettings {
        DirectorySettings::new(
            self.var("LDAP_URL"),
            format!("{user}@corp.example.com"),
            Secret::new(password),
        )
    }

    fn ca_file(&self) -> PathBuf {
        PathBuf::from(self.var("CA_FILE"))
    }
}

async fn connect(settings: DirectorySettings) -> AdDirectory {
    match AdDirectory::connect(settings).await {
        Ok(directory) => directory,
        Err(e) => panic!("connecting to the test DC failed: {e}"),
    }
}

fn names(users: &[DirectoryUser]) -> BTreeSet<String> {
    users
        .iter()
        .map(|u| u.sam_account_name.clone().expect("sAMAccountName"))
        .collect()
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn binds_as_upn_and_as_domain_backslash_user_and_finds_the_naming_contexts() {
    let dc = TestDc::get();
    let directory = connect(dc.settings()).await;
    assert_eq!(directory.base_dn(), dc.base_dn());
    assert_eq!(
        directory.configuration_dn(),
        format!("CN=Configuration,{}", dc.base_dn())
    );
    let debug = format!("{directory:?}");
    assert!(!debug.contains(dc.var("BIND_PASSWORD")), "{debug}");

    let mut down_level = dc.settings();
    down_level.bind_user = format!("{}\\svc-replicator", dc.var("DOMAIN"));
    connect(down_level).await;
}

#[tokio::test]
async fn wrong_password_is_explained_as_ad_code_52e_without_showing_the_password() {
    let dc = TestDc::get();
    let wrong = "Definitely-Wrong-Pass-7";
    let err = AdDirectory::connect(dc.user_settings("grace", wrong))
        .await
        .unwrap_err();
    match &err {
        DirectoryError::Bind { user, ad_code, .. } => {
            assert_eq!(user, "grace@corp.example.com");
            assert_eq!(ad_code.as_deref(), Some("52e"));
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("wrong user name or password"), "{text}");
    assert!(!text.contains(wrong) && !format!("{err:?}").contains(wrong));
    // the right password works (and resets grace's bad-password count, so
    // repeated runs never lock her out)
    connect(dc.user_settings("grace", dc.var("TEST_USER_PASSWORD"))).await;
}

#[tokio::test]
async fn locked_and_disabled_accounts_are_explained() {
    let dc = TestDc::get();
    let password = dc.var("TEST_USER_PASSWORD");
    for (user, code, words) in [("frank", "775", "locked out"), ("erin", "533", "disabled")] {
        let err = AdDirectory::connect(dc.user_settings(user, password))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DirectoryError::Bind { ad_code: Some(c), .. } if c == code),
            "{user}: {err:?}"
        );
        assert!(err.to_string().contains(words), "{user}: {err}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let dc = TestDc::get();
    let mut settings = dc.settings();
    settings.url = "ldap://127.0.0.1:1".into();
    let err = AdDirectory::connect(settings).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn a_missing_search_base_is_named() {
    let dc = TestDc::get();
    let mut settings = dc.settings();
    settings.base_dn = Some(format!("OU=Nowhere,{}", dc.base_dn()));
    let err = connect(settings).await.users().await.unwrap_err();
    assert!(matches!(err, DirectoryError::NoSuchBase { .. }), "{err:?}");
    assert!(err.to_string().contains("OU=Nowhere"), "{err}");
}

#[tokio::test]
async fn ldaps_and_starttls_verify_the_certificate_against_the_ca_file() {
    let dc = TestDc::get();
    let ldaps = || {
        let mut s = dc.settings();
        s.url = dc.var("LDAPS_URL").into();
        s.base_dn = Some(dc.ou("Staff"));
        s
    };
    let starttls = || {
        let mut s = dc.settings();
        s.starttls = true;
        s.base_dn = Some(dc.ou("Staff"));
        s
    };
    for (name, make) in [
        ("ldaps", &ldaps as &dyn Fn() -> DirectorySettings),
        ("starttls", &starttls),
    ] {
        let err = AdDirectory::connect(make()).await.unwrap_err();
        assert!(matches!(err, DirectoryError::Tls { .. }), "{name}: {err:?}");
        let text = err.to_string();
        assert!(
            text.contains("unknown issuer") && text.contains("ca_file"),
            "{name}: {text}"
        );

        let mut with_ca = make();
        with_ca.ca_file = Some(dc.ca_file());
        let users = connect(with_ca).await.users().await.unwrap();
        assert!(
            names(&users).contains("alice"),
            "{name}: {:?}",
            names(&users)
        );
    }
}

#[tokio::test]
async fn reads_all_2500_generated_users_in_pages_without_duplicates() {
    let dc = TestDc::get();
    let mut settings = dc.settings();
    settings.base_dn = Some(dc.ou("Generated"));
    let users = connect(settings).await.users().await.unwrap();
    assert_eq!(users.len(), 2500);
    let guids: BTreeSet<_> = users.iter().map(|u| u.object_guid).collect();
    assert_eq!(guids.len(), 2500, "duplicate objectGUIDs");
    let expected: BTreeSet<String> = (1..=2500).map(|i| format!("gen-{i:04}")).collect();
    assert_eq!(names(&users), expected);
    for user in &users {
        let sam = user.sam_account_name.as_deref().unwrap();
        assert_eq!(
            user.primary_smtp.as_deref(),
            Some(format!("{sam}@corp.example.com").as_str())
        );
    }
}

#[tokio::test]
async fn the_whole_domain_is_read_by_default() {
    let dc = TestDc::get();
    let users = connect(dc.settings()).await.users().await.unwrap();
    let names = names(&users);
    // 2,500 generated + staff + service accounts + Administrator; the
    // disabled erin, Guest and krbtgt are filtered out
    assert!(users.len() > 2500, "{}", users.len());
    assert!(
        names.contains("alice") && names.contains("gen-2500") && names.contains("Administrator")
    );
    assert!(!names.contains("erin") && !names.contains("krbtgt") && !names.contains("Guest"));
}

#[tokio::test]
async fn primary_smtp_address_prefers_the_upper_case_proxy_address_then_mail() {
    let dc = TestDc::get();
    let mut settings = dc.settings();
    settings.base_dn = Some(dc.ou("Staff"));
    let users = connect(settings).await.users().await.unwrap();
    let by_name: HashMap<_, _> = users
        .iter()
        .map(|u| (u.sam_account_name.clone().unwrap(), u))
        .collect();
    assert_eq!(
        names(&users),
        set(&["alice", "bob", "carol", "dave", "frank", "grace"])
    );
    let primary = |name: &str| by_name[name].primary_smtp.clone();
    assert_eq!(
        primary("alice").as_deref(),
        Some("alice.smith@corp.example.com")
    );
    assert_eq!(primary("bob").as_deref(), Some("bob@corp.example.com"));
    assert_eq!(primary("carol").as_deref(), Some("carol@corp.example.com"));
    assert_eq!(primary("dave"), None);
    assert!(!by_name["dave"].has_mailbox());
    assert_eq!(
        by_name["alice"].smtp_addresses,
        [
            "alice.smith@corp.example.com",
            "alice@corp.example.com",
            "alice.old@corp.example.com"
        ]
    );
    let alice = by_name["alice"];
    assert_eq!(
        alice.user_principal_name.as_deref(),
        Some("alice@corp.example.com")
    );
    assert_eq!(alice.dn, format!("CN=alice,{}", dc.ou("Staff")));
    // Samba's schema has no Exchange attributes
    assert_eq!(alice.home_mdb, None);
    let guid = alice.object_guid.to_string();
    assert!(
        guid.starts_with('{') && guid.ends_with('}') && guid.len() == 38,
        "{guid}"
    );
    assert_eq!(guid, guid.to_uppercase());
}

#[tokio::test]
async fn group_scoping_follows_nested_membership() {
    let dc = TestDc::get();
    let read = |include: Option<&str>, exclude: Option<&str>| {
        let mut settings = dc.settings();
        settings.base_dn = Some(dc.ou("Staff"));
        settings.include_group = include.map(|g| dc.group(g));
        settings.exclude_group = exclude.map(|g| dc.group(g));
        async move { names(&connect(settings).await.users().await.unwrap()) }
    };
    // Replicated Staff = {alice, Replicated Sales = {bob, Sales EMEA = {carol}}}
    assert_eq!(
        read(Some("Replicated Staff"), None).await,
        set(&["alice", "bob", "carol"])
    );
    assert_eq!(
        read(Some("Replicated Staff"), Some("No Replication")).await,
        set(&["alice", "carol"])
    );
    assert_eq!(
        read(None, Some("Replicated Sales")).await,
        set(&["alice", "dave", "frank", "grace"])
    );
}

#[tokio::test]
async fn users_are_found_by_every_key_in_the_index_and_by_single_lookups() {
    let dc = TestDc::get();
    let mut settings = dc.settings();
    settings.base_dn = Some(dc.ou("Staff"));
    let directory = connect(settings).await;
    let index = UserIndex::new(directory.users().await.unwrap());
    let alice = index
        .get(&UserKey::SamAccountName("alice".into()))
        .expect("alice in the index")
        .clone();
    let keys = [
        UserKey::object_guid(&alice.object_guid.to_string().to_lowercase()).unwrap(),
        UserKey::Dn(alice.dn.to_uppercase()),
        UserKey::SamAccountName("CORP\\alice".into()),
        UserKey::UserPrincipalName("Alice@corp.example.com".into()),
        UserKey::SmtpAddress("alice.smith@corp.example.com".into()),
        UserKey::SmtpAddress("ALICE@corp.example.com".into()),
        UserKey::SmtpAddress("alice.old@corp.example.com".into()),
    ];
    for key in &keys {
        assert_eq!(index.get(key), Some(&alice), "index: {key:?}");
        let found = directory.find_user(key).await.unwrap();
        assert_eq!(found.as_ref(), Some(&alice), "lookup: {key:?}");
    }
    // out of scope (disabled) or absent: not found
    for key in [
        UserKey::SamAccountName("erin".into()),
        UserKey::SmtpAddress("erin@corp.example.com".into()),
        UserKey::SamAccountName("nobody".into()),
        UserKey::Dn(format!("CN=nobody,{}", dc.ou("Staff"))),
        UserKey::Dn(format!("CN=gen-0001,{}", dc.ou("Generated"))),
    ] {
        assert_eq!(index.get(&key), None, "index: {key:?}");
        assert_eq!(
            directory.find_user(&key).await.unwrap(),
            None,
            "lookup: {key:?}"
        );
    }
}

#[tokio::test]
async fn autodiscover_service_connection_points_come_from_the_configuration_partition() {
    let dc = TestDc::get();
    let directory = connect(dc.settings()).await;
    let mut points = directory
        .service_connection_points(&AUTODISCOVER_SCP_KEYWORDS)
        .await
        .unwrap();
    points.sort_by(|a, b| a.url.cmp(&b.url));
    let found: Vec<(&str, Vec<String>)> = points
        .iter()
        .map(|p| (p.url.as_str(), p.sites.clone()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "https://ex1.corp.example.com/Autodiscover/Autodiscover.xml",
                vec!["Default-First-Site-Name".to_owned()]
            ),
            (
                "https://ex2.corp.example.com/Autodiscover/Autodiscover.xml",
                vec![]
            ),
        ]
    );
    assert!(
        points[0].dn.contains("CN=Configuration"),
        "{}",
        points[0].dn
    );
}

#[tokio::test]
async fn an_account_that_may_not_read_mail_attributes_gets_a_clear_message() {
    let dc = TestDc::get();
    let mut settings = dc.user_settings("svc-restricted", dc.var("TEST_USER_PASSWORD"));
    settings.base_dn = Some(dc.ou("Staff"));
    let err = connect(settings).await.users().await.unwrap_err();
    assert!(
        matches!(
            &err,
            DirectoryError::MailAttributesUnreadable { users: 6, .. }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("svc-restricted@corp.example.com") && text.contains("read permission"),
        "{text}"
    );
    // the same users read by the unrestricted account do have addresses
    let mut settings = dc.settings();
    settings.base_dn = Some(dc.ou("Staff"));
    assert!(connect(settings)
        .await
        .users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.has_mailbox()));
}
