//! The simulated organisation's mailboxes and calendars: loaded from a JSON
//! (or TOML) file, or generated deterministically from a seed.

use std::path::{Path, PathBuf};

use crate::sim::rng::SplitMix64;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

/// What the service account may see of a mailbox's calendar (its folder
/// permission for "Default"/the account, as Exchange grants it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Nothing: `ErrorNoFreeBusyAccess` / `ErrorAccessDenied`.
    None,
    /// Free/busy times only (`AvailabilityOnly`): a Detailed request gets
    /// the FreeBusy view; the folder cannot be opened.
    FreeBusy,
    /// Details of non-private items (`Reviewer`).
    #[default]
    Details,
    /// Details including private items (a delegate who may see them).
    DetailsAndPrivate,
}

/// `LegacyFreeBusyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SimBusyType {
    Free,
    Tentative,
    Busy,
    #[serde(rename = "OOF")]
    OutOfOffice,
    WorkingElsewhere,
    NoData,
}

impl SimBusyType {
    pub const ALL: [SimBusyType; 6] = [
        SimBusyType::Free,
        SimBusyType::Tentative,
        SimBusyType::Busy,
        SimBusyType::OutOfOffice,
        SimBusyType::WorkingElsewhere,
        SimBusyType::NoData,
    ];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            SimBusyType::Free => "Free",
            SimBusyType::Tentative => "Tentative",
            SimBusyType::Busy => "Busy",
            SimBusyType::OutOfOffice => "OOF",
            SimBusyType::WorkingElsewhere => "WorkingElsewhere",
            SimBusyType::NoData => "NoData",
        }
    }

    /// The digit of `MergedFreeBusy` (0 free, 1 tentative, 2 busy, 3 OOF,
    /// 4 working elsewhere, 5 no data, as Exchange 2013+ writes them).
    pub fn merged_digit(self) -> u8 {
        match self {
            SimBusyType::Free => b'0',
            SimBusyType::Tentative => b'1',
            SimBusyType::Busy => b'2',
            SimBusyType::OutOfOffice => b'3',
            SimBusyType::WorkingElsewhere => b'4',
            SimBusyType::NoData => b'5',
        }
    }

    /// Which of two overlapping events shows in a merged slot.
    pub(crate) fn rank(self) -> u8 {
        match self {
            SimBusyType::NoData => 0,
            SimBusyType::Free => 1,
            SimBusyType::WorkingElsewhere => 2,
            SimBusyType::Tentative => 3,
            SimBusyType::Busy => 4,
            SimBusyType::OutOfOffice => 5,
        }
    }
}

/// A repetition: `count` occurrences, `every_days` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    pub every_days: u32,
    pub count: u32,
}

/// One calendar item (a series when `recurrence` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEvent {
    /// Unique within the mailbox; the item id is derived from it.
    pub id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub busy_type: SimBusyType,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub meeting: bool,
    #[serde(default)]
    pub all_day: bool,
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// One occurrence of an event inside a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence<'a> {
    pub event: &'a SimEvent,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Position in its series (0 for single items).
    pub index: u32,
}

impl Occurrence<'_> {
    /// A stable item id for this occurrence.
    pub fn item_id(&self, mailbox: &str) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in mailbox
            .to_ascii_lowercase()
            .bytes()
            .chain(self.event.id.bytes())
            .chain(self.index.to_le_bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("AAMkADSIM{hash:016X}{:04X}", self.index)
    }
}

impl SimEvent {
    /// The occurrences overlapping `[from, to)`, in start order.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Occurrence<'_>> {
        let (count, step) = match self.recurrence {
            Some(r) if r.count > 0 => (r.count, Duration::days(i64::from(r.every_days.max(1)))),
            _ => (1, Duration::zero()),
        };
        (0..count)
            .map(|index| {
                let shift = step * index as i32;
                Occurrence {
                    event: self,
                    start: self.start + shift,
                    end: self.end + shift,
                    index,
                }
            })
            .filter(|o| o.start < to && o.end > from)
            .collect()
    }
}

/// A mailbox and its calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMailbox {
    /// Primary SMTP address.
    pub smtp: String,
    pub display_name: String,
    /// What accounts other than the owner may see.
    #[serde(default)]
    pub permission: Permission,
    #[serde(default)]
    pub events: Vec<SimEvent>,
}

impl SimMailbox {
    /// The occurrences of all events overlapping `[from, to)`, by start.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Occurrence<'_>> {
        let mut all: Vec<Occurrence<'_>> = self
            .events
            .iter()
            .flat_map(|e| e.occurrences(from, to))
            .collect();
        all.sort_by_key(|o| (o.start, o.end));
        all
    }
}

/// The id of `smtp`'s calendar folder (GetFolder's `FolderId`, the
/// `ParentFolderId` of its items' notification events).
pub(crate) fn calendar_folder_id(smtp: &str) -> String {
    format!("AAMkADSIMCAL{}", smtp.to_ascii_uppercase())
}

/// The file format: `{ "mailboxes": [ ... ] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxFile {
    pub mailboxes: Vec<SimMailbox>,
}

/// Why a mailbox file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MailboxFileError {
    #[error("cannot read the mailbox file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the mailbox file {path} is not valid {format}: {message}")]
    Parse {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("the mailbox file {path} has the extension {extension:?}; use .json or .toml")]
    UnknownFormat { path: PathBuf, extension: String },
    #[error("the mailbox file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

impl MailboxFile {
    /// Reads `path` (`.json` or `.toml`) and checks it: unique addresses, events that end after they
    /// start, unique event ids per mailbox.
    pub fn load(path: &Path) -> Result<MailboxFile, MailboxFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| MailboxFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let file: MailboxFile = match extension.as_str() {
            "json" => serde_json::from_str(&text).map_err(|e| MailboxFileError::Parse {
                path: path.to_owned(),
                format: "JSON",
                message: e.to_string(),
            })?,
            "toml" => toml::from_str(&text).map_err(|e| MailboxFileError::Parse {
                path: path.to_owned(),
                format: "TOML",
                message: e.to_string(),
            })?,
            _ => {
                return Err(MailboxFileError::UnknownFormat {
                    path: path.to_owned(),
                    extension,
                })
            }
        };
        file.validate()
            .map_err(|problem| MailboxFileError::Invalid {
                path: path.to_owned(),
                problem,
            })?;
        Ok(file)
    }

    /// The first problem found, as a sentence naming the mailbox or event.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for mailbox in &self.mailboxes {
            if !is_valid_smtp(&mailbox.smtp) {
                return Err(format!(
                    "mailbox {:?} is not an SMTP address (name@domain)",
                    mailbox.smtp
                ));
            }
            if !seen.insert(mailbox.smtp.to_ascii_lowercase()) {
                return Err(format!("mailbox {} is listed twice", mailbox.smtp));
            }
            let mut ids = std::collections::HashSet::new();
            for event in &mailbox.events {
                if event.end <= event.start {
                    return Err(format!(
                        "event {:?} of {} ends ({}) before it starts ({})",
                        event.id, mailbox.smtp, event.end, event.start
                    ));
                }
                if !ids.insert(event.id.as_str()) {
                    return Err(format!(
                        "event id {:?} is used twice in {}",
                        event.id, mailbox.smtp
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub users: usize,
    pub events_per_user: usize,
    pub seed: u64,
    /// SMTP domain, e.g. `contoso.test`.
    pub domain: String,
    /// Events are placed around this instant (yesterday to two weeks ahead).
    pub now: DateTime<Utc>,
}

const GIVEN: [&str; 16] = [
    "Alex", "Berit", "Carlos", "Dana", "Emil", "Frieda", "Goran", "Hanna", "Ines", "Jonas",
    "Katja", "Lukas", "Mira", "Nils", "Olga", "Paul",
];
const FAMILY: [&str; 12] = [
    "Meier",
    "Schulz",
    "Novak",
    "Berger",
    "Yilmaz",
    "Larsen",
    "Costa",
    "Wagner",
    "Kowalski",
    "Fischer",
    "Haas",
    "Lindqvist",
];
const SUBJECTS: [&str; 10] = [
    "Team sync",
    "Customer call",
    "Architecture board",
    "1:1",
    "Budget review & sign-off",
    "Release <go/no-go>",
    "Workshop",
    "Lunch",
    "Interview",
    "Training",
];
const LOCATIONS: [&str; 5] = [
    "Room Alster 4.11",
    "Teams",
    "Kitchen, 3rd floor",
    "Customer site",
    "Room \"Elbe\" 2.04",
];

/// Generates `spec.users` mailboxes with `spec.events_per_user` events each:
/// all busy types (WorkingElsewhere and NoData included), private, recurring,
/// all-day items and meetings, near `spec.now`. Permissions vary: every 7th
/// mailbox gives free/busy only, every 11th nothing, every 5th details
/// including private items. The same spec always gives the same mailboxes.
pub fn generate(spec: &GenerateSpec) -> MailboxFile {
    let mut rng = SplitMix64(spec.seed);
    let base = spec
        .now
        .duration_trunc(Duration::minutes(15))
        .unwrap_or(spec.now);
    let mut mailboxes = Vec::with_capacity(spec.users);
    for n in 0..spec.users {
        let given = GIVEN[n % GIVEN.len()];
        let family = FAMILY[(n / GIVEN.len()) % FAMILY.len()];
        let round = n / (GIVEN.len() * FAMILY.len());
        let suffix = if round == 0 {
            String::new()
        } else {
            round.to_string()
        };
        let smtp = format!(
            "{}.{}{suffix}@{}",
            given.to_ascii_lowercase(),
            family.to_ascii_lowercase(),
            spec.domain
        );
        let permission = if n % 11 == 10 {
            Permission::None
        } else if n % 7 == 6 {
            Permission::FreeBusy
        } else if n % 5 == 4 {
            Permission::DetailsAndPrivate
        } else {
            Permission::Details
        };
        let mut events = Vec::with_capacity(spec.events_per_user);
        for e in 0..spec.events_per_user {
            // Quarter hours from yesterday to two weeks ahead.
            let offset = Duration::minutes(15 * (rng.below(15 * 24 * 4) as i64 - 24 * 4));
            let all_day = e % 13 == 12;
            let (start, end) = if all_day {
                let day = (base + offset)
                    .duration_trunc(Duration::days(1))
                    .unwrap_or(base);
                (day, day + Duration::days(1 + rng.below(2) as i64))
            } else {
                let start = base + offset;
                (
                    start,
                    start + Duration::minutes(15 * (2 + rng.below(14) as i64)),
                )
            };
            let busy_type = SimBusyType::ALL[(e + n) % SimBusyType::ALL.len()];
            let recurrence = (e % 4 == 1).then(|| Recurrence {
                every_days: if rng.below(2) == 0 { 1 } else { 7 },
                count: 2 + rng.below(8) as u32,
            });
            events.push(SimEvent {
                id: format!("ev{e}"),
                start,
                end,
                busy_type,
                subject: Some(SUBJECTS[rng.below(SUBJECTS.len() as u64) as usize].to_owned()),
                location: (rng.below(3) != 0)
                    .then(|| LOCATIONS[rng.below(LOCATIONS.len() as u64) as usize].to_owned()),
                private: e % 5 == 3,
                meeting: rng.below(2) == 0,
                all_day,
                recurrence,
            });
        }
        mailboxes.push(SimMailbox {
            smtp,
            display_name: format!("{given} {family}{suffix}"),
            permission,
            events,
        });
    }
    MailboxFile { mailboxes }
}

/// Whether `address` looks like an SMTP address Exchange would accept:
/// `local@domain` with a dotted domain, no spaces or angle brackets.
pub fn is_valid_smtp(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let bad = |c: char| c.is_whitespace() || "<>()[],;:\\\"@".contains(c);
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !local.chars().any(bad)
        && !domain.chars().any(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(seed: u64) -> GenerateSpec {
        GenerateSpec {
            users: 40,
            events_per_user: 20,
            seed,
            domain: "contoso.test".into(),
            now: Utc.with_ymd_and_hms(2026, 3, 2, 10, 7, 0).unwrap(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_calendars_and_another_seed_others() {
        assert_eq!(generate(&spec(7)), generate(&spec(7)));
        assert_ne!(generate(&spec(7)), generate(&spec(8)));
    }

    #[test]
    fn generated_calendars_cover_every_kind_of_event_and_permission() {
        let file = generate(&spec(3));
        file.validate().expect("generated data is valid");
        let events: Vec<&SimEvent> = file.mailboxes.iter().flat_map(|m| &m.events).collect();
        for busy in SimBusyType::ALL {
            assert!(events.iter().any(|e| e.busy_type == busy), "{busy:?}");
        }
        assert!(events.iter().any(|e| e.private));
        assert!(events.iter().any(|e| e.recurrence.is_some()));
        assert!(events.iter().any(|e| e.all_day));
        for permission in [
            Permission::None,
            Permission::FreeBusy,
            Permission::Details,
            Permission::DetailsAndPrivate,
        ] {
            assert!(
                file.mailboxes.iter().any(|m| m.permission == permission),
                "{permission:?}"
            );
        }
        let addresses: std::collections::HashSet<_> =
            file.mailboxes.iter().map(|m| m.smtp.as_str()).collect();
        assert_eq!(addresses.len(), 40);
    }

    #[test]
    fn a_series_expands_into_the_occurrences_inside_the_window() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let event = SimEvent {
            id: "daily".into(),
            start,
            end: start + Duration::hours(1),
            busy_type: SimBusyType::Busy,
            subject: None,
            location: None,
            private: false,
            meeting: true,
            all_day: false,
            recurrence: Some(Recurrence {
                every_days: 1,
                count: 5,
            }),
        };
        let found = event.occurrences(start + Duration::days(1), start + Duration::days(3));
        let indexes: Vec<u32> = found.iter().map(|o| o.index).collect();
        assert_eq!(indexes, vec![1, 2]);
        assert_eq!(found[0].start, start + Duration::days(1));
        assert_ne!(found[0].item_id("a@b.c"), found[1].item_id("a@b.c"));
    }

    #[test]
    fn a_file_with_an_event_ending_before_its_start_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailboxes.json");
        std::fs::write(
            &path,
            r#"{"mailboxes":[{"smtp":"a@contoso.test","display_name":"A","events":[
                {"id":"x","start":"2026-03-02T10:00:00Z","end":"2026-03-02T09:00:00Z","busy_type":"Busy"}]}]}"#,
        )
        .unwrap();
        let error = MailboxFile::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("event \"x\" of a@contoso.test ends"),
            "{error}"
        );
    }

    #[test]
    fn a_toml_file_loads_like_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailboxes.toml");
        std::fs::write(
            &path,
            r#"
[[mailboxes]]
smtp = "a@contoso.test"
display_name = "A"
permission = "free_busy"

[[mailboxes.events]]
id = "x"
start = "2026-03-02T09:00:00Z"
end = "2026-03-02T10:00:00Z"
busy_type = "OOF"
private = true
recurrence = { every_days = 7, count = 4 }
"#,
        )
        .unwrap();
        let file = MailboxFile::load(&path).unwrap();
        let mailbox = &file.mailboxes[0];
        assert_eq!(mailbox.permission, Permission::FreeBusy);
        assert_eq!(mailbox.events[0].busy_type, SimBusyType::OutOfOffice);
        assert_eq!(
            mailbox.events[0].recurrence,
            Some(Recurrence {
                every_days: 7,
                count: 4
            })
        );
        let unknown = dir.path().join("mailboxes.yaml");
        std::fs::write(&unknown, "").unwrap();
        let error = MailboxFile::load(&unknown).unwrap_err().to_string();
        assert!(error.contains("use .json or .toml"), "{error}");
    }
}
