//! The autodiscover bindings (SOAP GetUserSettings and POX): request documents
//! (snapshots) and the answers real servers give: settings, redirects, errors.

use ews_toolkit::autodiscover::pox::{self, PoxAnswer};
use ews_toolkit::autodiscover::soap::{self, UserSettingsAnswer};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/ews/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn pretty(xml: &[u8]) -> String {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            e => writer.write_event(e).unwrap(),
        }
    }
    String::from_utf8(writer.into_inner()).unwrap()
}

#[test]
fn request_documents() {
    let soap = soap::request(
        "https://autodiscover.corp.example.com/autodiscover/autodiscover.svc",
        "alice@corp.example.com",
    )
    .unwrap();
    let pox = pox::request("alice@corp.example.com").unwrap();
    insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("autodiscover_request_soap_get_user_settings", pretty(&soap));
        insta::assert_snapshot!("autodiscover_request_pox", pretty(&pox));
    });
}

#[test]
fn soap_settings_give_both_ews_urls() {
    match soap::parse_response(&fixture("autodiscover_soap_getusersettings.xml")).unwrap() {
        UserSettingsAnswer::Settings {
            internal_ews_url,
            external_ews_url,
            server_version,
        } => {
            assert_eq!(
                internal_ews_url.as_deref(),
                Some("https://mail.corp.example.com/EWS/Exchange.asmx")
            );
            assert_eq!(
                external_ews_url.as_deref(),
                Some("https://webmail.corp.example.com/EWS/Exchange.asmx")
            );
            assert_eq!(server_version.as_deref(), Some("15.1.2507.39"));
        }
        other => panic!("expected settings, got {other:?}"),
    }
}

#[test]
fn soap_redirects_are_typed() {
    assert_eq!(
        soap::parse_response(&fixture("autodiscover_soap_redirect.xml")).unwrap(),
        UserSettingsAnswer::RedirectAddress("alice@eu.corp.example.com".into())
    );
    assert!(matches!(
        soap::parse_response(&fixture("autodiscover_soap_redirect_url.xml")).unwrap(),
        UserSettingsAnswer::RedirectUrl(url) if url.starts_with("https://")
    ));
}

#[test]
fn pox_settings_redirects_and_errors() {
    match pox::parse_response(&fixture("autodiscover_pox_response.xml")).unwrap() {
        PoxAnswer::Settings {
            internal_ews_url,
            external_ews_url,
            display_name,
        } => {
            assert_eq!(
                internal_ews_url.as_deref(),
                Some("https://mail.corp.example.com/EWS/Exchange.asmx")
            );
            assert_eq!(
                external_ews_url.as_deref(),
                Some("https://webmail.corp.example.com/EWS/Exchange.asmx")
            );
            assert_eq!(display_name.as_deref(), Some("Alice Example"));
        }
        other => panic!("expected settings, got {other:?}"),
    }
    assert_eq!(
        pox::parse_response(&fixture("autodiscover_pox_redirect_addr.xml")).unwrap(),
        PoxAnswer::RedirectAddress("alice@eu.corp.example.com".into())
    );
    assert_eq!(
        pox::parse_response(&fixture("autodiscover_pox_redirect_url.xml")).unwrap(),
        PoxAnswer::RedirectUrl(
            "https://autodiscover.eu.corp.example.com/autodiscover/autodiscover.xml".into()
        )
    );
    assert_eq!(
        pox::parse_response(&fixture("autodiscover_pox_error.xml")).unwrap(),
        PoxAnswer::Error {
            code: "500".into(),
            message: Some("The e-mail address cannot be found.".into())
        }
    );
}

#[test]
fn a_pox_answer_not_in_utf8_is_refused_naming_its_encoding() {
    let utf8 = String::from_utf8(fixture("autodiscover_pox_response.xml")).unwrap();
    let declared = utf8.replacen("utf-8", "windows-1252", 1);
    assert_ne!(declared, utf8, "the fixture declares its encoding");
    let err = pox::parse_response(declared.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("windows-1252") && err.contains("not UTF-8"),
        "{err}"
    );
}

#[test]
fn the_pox_request_reads_back_as_the_documented_request() {
    let text = String::from_utf8(pox::request("bob@corp.example.com").unwrap()).unwrap();
    let expected = String::from_utf8(fixture("req_autodiscover_pox.xml")).unwrap();
    let canonical = |s: &str| {
        pretty(s.replace("alice@", "bob@").as_bytes())
            .replace("q:", "")
            .replace(":q=", "=")
    };
    assert_eq!(canonical(&text), canonical(&expected));
}
