//! The status page: server-rendered HTML, no script, reloaded by the browser
//! every 30 s (meta refresh). Every text from a server, the configuration or
//! a user is escaped; no appointment is ever on it (the monitor keeps none).

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::monitor::{ServerState, Snapshot};

/// Seconds between the page's reloads.
pub const REFRESH_SECONDS: u32 = 30;

/// Text as HTML text or attribute value. Five characters are enough for
/// text and quoted attributes, and the page puts nothing anywhere else.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;background:#f4f5f7;color:#1d2433}\
header{background:#1f3b63;color:#fff;padding:12px 24px}h1{margin:0;font-size:22px}\
main{padding:8px 24px}h2{font-size:17px;margin:20px 0 8px}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #c9ced8;padding:4px 10px;text-align:left;vertical-align:top}\
th{background:#e3e7ee}.ok{color:#fff;background:#2e7d32}.bad{color:#fff;background:#c62828}.unknown{background:#e0e0e0}\
.verdict{display:inline-block;padding:6px 12px;font-weight:bold;white-space:pre-line}\
td.num{text-align:right}h3{font-size:15px;font-weight:normal;margin:12px 0 4px}ul{margin:4px 0 12px}";

/// The whole page.
pub fn render(snapshot: &Snapshot) -> String {
    let mut html = String::new();
    let _ = write_page(&mut html, snapshot);
    html
}

fn write_page(out: &mut String, s: &Snapshot) -> std::fmt::Result {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>ews-calendar-replicator status</title><style>{STYLE}</style></head><body>\
         <header><h1>ews-calendar-replicator {}</h1></header><main>",
        escape(s.version)
    )?;

    out.push_str("<section id=\"service\"><h2>Service</h2>");
    match &s.health {
        Ok(text) => write!(out, "<p class=\"verdict ok\">Healthy: {}</p>", escape(text))?,
        Err(reason) => write!(
            out,
            "<p class=\"verdict bad\">Unhealthy: {}</p>",
            escape(reason)
        )?,
    }
    let doing = match s.cycle_running_since {
        Some(since) => format!("replicating (cycle started {})", time(since)),
        None if s.cycles.is_empty() => "starting: no cycle has run yet".to_owned(),
        None => "waiting for the next cycle".to_owned(),
    };
    write!(
        out,
        "<table><tr><th>state</th><td>{}</td></tr>\
         <tr><th>running since</th><td>{}</td></tr>\
         <tr><th>interval</th><td>{} min</td></tr>\
         <tr><th>last successful cycle</th><td>{}</td></tr></table></section>",
        escape(&doing),
        time(s.started_at),
        s.interval.as_secs() / 60,
        s.last_success_at
            .map(time)
            .unwrap_or_else(|| "none yet".to_owned())
    )?;

    out.push_str(
        "<section id=\"servers\"><h2>Servers</h2><table>\
         <tr><th>server</th><th>state</th><th>since</th><th>detail</th></tr>",
    );
    for (server, state) in &s.servers {
        let (class, label, since, detail) = match state {
            ServerState::Unknown => ("unknown", "not contacted yet", String::new(), ""),
            ServerState::Reachable { since } => ("ok", "reachable", time(*since), ""),
            ServerState::Unreachable { since, reason } => {
                ("bad", "unreachable", time(*since), reason.as_str())
            }
        };
        write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{label}</td><td>{since}</td><td>{}</td></tr>",
            escape(server.display_name()),
            escape(detail)
        )?;
    }
    out.push_str("</table></section>");

    out.push_str("<section id=\"cycles\"><h2>Last cycles</h2>");
    if s.cycles.is_empty() {
        out.push_str("<p>No cycle has finished since the service started.</p>");
    } else {
        out.push_str(
            "<table><tr><th>started</th><th>duration</th><th>outcome</th><th>listed</th>\
             <th>written</th><th>unchanged</th><th>skipped</th><th>failed</th><th>error</th></tr>",
        );
        for c in &s.cycles {
            let class = match c.outcome {
                "success" => "ok",
                "failed" => "bad",
                _ => "unknown",
            };
            write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{:.1} s</td><td class=\"{class}\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                time(c.started_at),
                c.duration.as_secs_f64(),
                c.outcome,
                c.listed,
                c.written,
                c.unchanged,
                c.skipped,
                c.failed,
                escape(c.error.as_deref().unwrap_or(""))
            )?;
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");

    out.push_str("<section id=\"failing\"><h2>Failing users</h2>");
    if s.failing.is_empty() {
        out.push_str("<p>None in the last complete cycle.</p>");
    }
    for group in &s.failing {
        write!(
            out,
            "<h3>{} user{}: {}</h3><ul>",
            group.users.len(),
            if group.users.len() == 1 { "" } else { "s" },
            escape(&group.reason)
        )?;
        for user in &group.users {
            write!(out, "<li>{}</li>", escape(user))?;
        }
        out.push_str("</ul>");
    }
    out.push_str("</section></main></body></html>\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_from_servers_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
