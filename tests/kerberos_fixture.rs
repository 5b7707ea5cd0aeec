//! The Kerberos test fixtures checked without our client (issue #20): the
//! Samba AD KDC of `scripts/test-dc.sh` (CI: started by `.ci/run`) and the
//! MIT acceptor `tests/fixtures/kerberos/acceptor.py`, driven by the
//! independent MIT client `probe_client.py`. When these pass and a Kerberos
//! test of the toolkit fails, the toolkit is at fault, not the fixtures.

mod kerberos_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kerberos_support::{
    probe, Acceptor, AcceptorMode, AcceptorOptions, ChannelBindings, Json, KerberosDc,
    ProbeOptions, ProbeResult, KRB5_OID, SPNEGO_OID,
};

fn start(dc: &KerberosDc, options: AcceptorOptions) -> Acceptor {
    Acceptor::start_with(dc, options)
}

fn assert_outcome(result: &ProbeResult, outcome: &str, krb_error: Option<&str>) {
    assert_eq!(
        (result.outcome.as_str(), result.krb_error.as_deref()),
        (outcome, krb_error),
        "probe: {:?}",
        result.fields
    );
}

#[test]
fn a_good_password_authenticates_with_a_verified_mutual_token_on_every_spn() {
    let dc = KerberosDc::from_env();
    let acceptor = start(&dc, AcceptorOptions::default());
    let spnego = probe(&dc, &acceptor, &ProbeOptions::client(&dc));
    assert_outcome(&spnego, "ok", None);
    let raw_krb5_alt_spn = probe(
        &dc,
        &acceptor,
        &ProbeOptions {
            spn: dc.spn_alt.clone(),
            spnego: false,
            ..ProbeOptions::client(&dc)
        },
    );
    assert_outcome(&raw_krb5_alt_spn, "ok", None);
    // the connection stays authenticated for requests without Authorization
    for result in [&spnego, &raw_krb5_alt_spn] {
        let handshakes = &result.fields["handshakes"];
        assert!(
            matches!(handshakes, Json::Raw(text) if text.contains(r#""keep_alive_status": 200"#)),
            "{handshakes:?}"
        );
    }

    let log = acceptor.handshakes();
    assert_eq!(log.len(), 2, "{log:?}");
    let expected_initiator = format!("svc-ews@{}", dc.realm);
    for (handshake, token) in log.iter().zip([SPNEGO_OID, KRB5_OID]) {
        assert_eq!(handshake.outcome, "ok", "{handshake:?}");
        assert_eq!(
            handshake.initiator.as_deref(),
            Some(expected_initiator.as_str())
        );
        assert_eq!(handshake.mechanism.as_deref(), Some(KRB5_OID));
        assert_eq!(handshake.token_mechanism.as_deref(), Some(token));
        assert!(
            handshake.server_token && !handshake.server_token_replayed,
            "{handshake:?}"
        );
    }
}

#[test]
fn the_kdc_names_wrong_passwords_disabled_and_locked_accounts_unknown_spns_and_missing_aes() {
    let dc = KerberosDc::from_env();
    let acceptor = start(&dc, AcceptorOptions::default());
    let staff = |name: &str, password: &str| ProbeOptions {
        user: dc.upn(name),
        password: password.to_owned(),
        ..ProbeOptions::client(&dc)
    };
    for (who, options, error) in [
        (
            "grace, wrong password",
            staff("grace", "not-the-password"),
            "KDC_ERR_PREAUTH_FAILED",
        ),
        (
            "erin, disabled",
            staff("erin", &dc.test_user_password),
            "KDC_ERR_CLIENT_REVOKED",
        ),
        (
            "frank, locked out",
            staff("frank", &dc.test_user_password),
            "KDC_ERR_CLIENT_REVOKED",
        ),
        (
            "nobody",
            staff("nobody", &dc.test_user_password),
            "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        ),
        (
            "unknown SPN",
            ProbeOptions {
                spn: "HTTP/unregistered.corp.example.com".into(),
                ..ProbeOptions::client(&dc)
            },
            "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        ),
        (
            "an AES-only client, a service account without AES",
            ProbeOptions {
                spn: dc.spn_rc4_only.clone(),
                aes_only: true,
                ..ProbeOptions::client(&dc)
            },
            "KDC_ERR_ETYPE_NOSUPP",
        ),
        (
            "unknown SPN, raw krb5",
            ProbeOptions {
                spn: "HTTP/unregistered.corp.example.com".into(),
                spnego: false,
                ..ProbeOptions::client(&dc)
            },
            "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        ),
    ] {
        let result = probe(&dc, &acceptor, &options);
        assert_eq!(
            (result.outcome.as_str(), result.krb_error.as_deref()),
            ("kdc-error", Some(error)),
            "{who}: {:?}",
            result.fields
        );
    }
    // grace's right password still works: wrong ones never lock her out
    assert_outcome(
        &probe(&dc, &acceptor, &staff("grace", &dc.test_user_password)),
        "ok",
        None,
    );
    assert!(
        acceptor.handshakes().iter().all(|h| h.outcome == "ok"),
        "only grace's good ticket reached the acceptor: {:?}",
        acceptor.handshakes()
    );
}

#[test]
fn refuse_mode_answers_401_after_a_good_ticket() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            mode: AcceptorMode::Refuse,
            ..Default::default()
        },
    );
    let result = probe(&dc, &acceptor, &ProbeOptions::client(&dc));
    assert_outcome(&result, "http-status", None);
    assert_eq!(result.status, Some(401));
    let log = acceptor.handshakes();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, "refused");
}

#[test]
fn no_mutual_token_mode_answers_200_without_the_servers_token() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            mode: AcceptorMode::NoMutualToken,
            ..Default::default()
        },
    );
    let result = probe(&dc, &acceptor, &ProbeOptions::client(&dc));
    assert_outcome(&result, "no-mutual-token", None);
    assert_eq!(result.status, Some(200));
}

#[test]
fn a_replayed_server_token_fails_the_clients_verification() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            mode: AcceptorMode::ReplayServerToken,
            ..Default::default()
        },
    );
    // the first handshake gets its own token, the second the first's
    let result = probe(
        &dc,
        &acceptor,
        &ProbeOptions {
            handshakes: 2,
            ..ProbeOptions::client(&dc)
        },
    );
    assert_eq!(result.outcome, "bad-server-token", "{:?}", result.fields);
    let log = acceptor.handshakes();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        !log[0].server_token_replayed && log[1].server_token_replayed,
        "{log:?}"
    );
}

#[test]
fn an_acceptor_an_hour_ahead_answers_401_with_krb_ap_err_skew() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            faketime: Some("+1h".into()),
            ..Default::default()
        },
    );
    for spnego in [true, false] {
        let result = probe(
            &dc,
            &acceptor,
            &ProbeOptions {
                spnego,
                ..ProbeOptions::client(&dc)
            },
        );
        assert_outcome(&result, "http-status", Some("KRB_AP_ERR_SKEW"));
        assert_eq!(result.status, Some(401));
    }
    let log = acceptor.handshakes();
    assert!(
        log.iter().all(|h| h.outcome == "failed"
            && h.error_token
            && h.error.as_deref().unwrap_or("").contains("Clock skew")),
        "{log:?}"
    );
}

#[test]
fn channel_bindings_must_match_when_sent_and_mit_accepts_none() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            channel_bindings: ChannelBindings::TlsServerEndPoint,
            ..Default::default()
        },
    );
    let with = |bindings| ProbeOptions {
        channel_bindings: bindings,
        ..ProbeOptions::client(&dc)
    };
    assert_outcome(
        &probe(&dc, &acceptor, &with("tls-server-end-point")),
        "ok",
        None,
    );
    // what the toolkit sends with stock sspi: no bindings; MIT lets it in
    assert_outcome(&probe(&dc, &acceptor, &with("none")), "ok", None);
    let wrong = probe(&dc, &acceptor, &with("wrong"));
    assert_eq!(
        (wrong.outcome.as_str(), wrong.status),
        ("http-status", Some(401)),
        "{:?}",
        wrong.fields
    );
    let log = acceptor.handshakes();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[2]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("channel bindings"),
        "{log:?}"
    );
}

/// One request on a raw connection to the plain-http acceptor: status line
/// and `WWW-Authenticate` values.
fn raw_request(stream: &mut TcpStream, authorization: Option<&str>) -> (String, Vec<String>) {
    let body = "<probe/>";
    let mut request = format!(
        "POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    // headers, then Content-Length bytes of body
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "response headers too long");
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let mut authenticate = Vec::new();
    let mut length = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "www-authenticate" => authenticate.push(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, authenticate)
}

#[test]
fn without_a_ticket_the_acceptor_offers_negotiate_only_and_refuses_ntlm() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            plain: true,
            ..Default::default()
        },
    );
    assert!(acceptor.url().starts_with("http://localhost:"));
    let mut stream = TcpStream::connect(("127.0.0.1", acceptor.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (status, authenticate) = raw_request(&mut stream, None);
    assert!(status.starts_with("HTTP/1.1 401 "), "{status}");
    assert_eq!(authenticate, ["Negotiate"]);
    // an NTLMSSP NEGOTIATE_MESSAGE under Negotiate, on the same connection
    let ntlm = "Negotiate TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==";
    let (status, authenticate) = raw_request(&mut stream, Some(ntlm));
    assert!(status.starts_with("HTTP/1.1 401 "), "{status}");
    assert_eq!(authenticate, ["Negotiate"]);
    let log = acceptor.handshakes();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].outcome.as_str(), log[0].token_mechanism.as_deref()),
        ("failed", Some("ntlmssp"))
    );
}

#[test]
fn the_acceptor_refuses_request_headers_beyond_64_kib() {
    let dc = KerberosDc::from_env();
    let acceptor = start(
        &dc,
        AcceptorOptions {
            plain: true,
            ..Default::default()
        },
    );
    let mut stream = TcpStream::connect(("127.0.0.1", acceptor.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let padding = "a".repeat(1000);
    let mut request = String::from("GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..70 {
        request.push_str(&format!("X-Padding-{i}: {padding}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn samba_dns_answers_the_kerberos_srv_record_with_a_target_on_loopback() {
    let dc = KerberosDc::from_env();
    let dns = dc
        .dns_server
        .expect("scripts/test-dc.sh env printed no KRB_DNS_SERVER");
    // dnspython comes with Samba's Python bindings (python3-dnspython)
    let script = r#"
import sys, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
r.port = int(sys.argv[2])
r.lifetime = 30
for srv in r.resolve("_kerberos._tcp." + sys.argv[3], "SRV"):
    target = str(srv.target)
    print("SRV", srv.port, target, *(str(a) for a in r.resolve(target, "A")))
"#;
    let output = std::process::Command::new(kerberos_support::PYTHON)
        .args([
            "-c",
            script,
            &dns.ip().to_string(),
            &dns.port().to_string(),
            &dc.realm,
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SRV lookup through {dns} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "SRV 88 dc1.corp.example.com. 127.0.0.1",
        "SRV _kerberos._tcp.{} through {dns}",
        dc.realm
    );
}
