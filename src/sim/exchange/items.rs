//! FindItem (CalendarView), GetFolder (the calendar probe) and ResolveNames,
//! each answered with one response message as Exchange does for one folder
//! or one entry.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::response_message::wire;
use crate::types;

use super::answer::{Answer, Caller};
use super::availability::effective_permission;
use super::mailbox::{calendar_folder_id, Permission, SimMailbox};
use super::soap::{body_start, esc};
use super::state::State;

/// The error class of one response message: code and text.
type MessageError = (&'static str, String);

/// The calendar a request names: a `calendar` distinguished folder of a
/// mailbox (or of the caller).
pub(crate) fn calendar_of<'a>(
    state: &'a State,
    caller: &Caller,
    folders: &types::NonEmptyArrayOfBaseFolderIdsType,
) -> Result<(&'a SimMailbox, Permission), MessageError> {
    let [folder] = folders.content.as_slice() else {
        return Err((
            "ErrorInvalidRequest",
            "This simulator serves one folder per request.".into(),
        ));
    };
    let types::NonEmptyArrayOfBaseFolderIdsTypeContent::DistinguishedFolderId(folder) = folder
    else {
        return Err((
            "ErrorFolderNotFound",
            "The specified folder could not be found in the store.".into(),
        ));
    };
    let id = wire(&folder.id);
    if id != "calendar" {
        return Err((
            "ErrorFolderNotFound",
            format!("The distinguished folder '{id}' holds no calendar items in this simulator; use 'calendar'."),
        ));
    }
    let address = folder
        .mailbox
        .as_ref()
        .and_then(|m| m.email_address.clone())
        .or_else(|| caller.acting_as.clone());
    let Some(address) = address else {
        return Err((
            "ErrorMissingEmailAddress",
            "The account has no mailbox; name one in DistinguishedFolderId/Mailbox.".into(),
        ));
    };
    let Some(mailbox) = state.mailbox(address.trim()) else {
        return Err((
            "ErrorNonExistentMailbox",
            format!("The SMTP address {address} has no mailbox associated with it."),
        ));
    };
    let permission = effective_permission(caller, mailbox);
    if matches!(permission, Permission::None | Permission::FreeBusy) {
        return Err((
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.".into(),
        ));
    }
    Ok((mailbox, permission))
}

fn error_message(element: &str, (code, text): MessageError, empty_child: &str) -> String {
    format!(
        r#"<m:{element} ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{empty_child}</m:{element}>"#,
        esc(&text)
    )
}

fn wrap(response: &str, message: String) -> Answer {
    Answer::Ok(format!(
        "{}<m:ResponseMessages>{message}</m:ResponseMessages></m:{response}>",
        body_start(response)
    ))
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn find_item(state: &State, caller: &Caller, request: &types::FindItemType) -> Answer {
    const ELEMENT: &str = "FindItemResponseMessage";
    let result = (|| {
        let Some(types::FindItemFindItemTypeChoice1::CalendarView(view)) =
            &request.find_item_type_choice_1
        else {
            return Err((
                "ErrorInvalidRequest",
                "This simulator answers FindItem with a CalendarView only.".to_owned(),
            ));
        };
        let time = |v: &str| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    (
                        "ErrorInvalidRequest",
                        format!("CalendarView date {v:?} is not an xs:dateTime with an offset."),
                    )
                })
        };
        let (start, end) = (time(&view.start_date)?, time(&view.end_date)?);
        if end < start {
            return Err((
                "ErrorCalendarEndDateIsEarlierThanStartDate",
                "EndDate is earlier than StartDate".to_owned(),
            ));
        }
        let (mailbox, permission) = calendar_of(state, caller, &request.parent_folder_ids)?;
        Ok((mailbox, permission, start, end, view.max_entries_returned))
    })();
    let (mailbox, permission, start, end, max) = match result {
        Ok(found) => found,
        Err(error) => return wrap("FindItemResponse", error_message(ELEMENT, error, "")),
    };
    let occurrences = mailbox.occurrences(start, end);
    let limit = max
        .filter(|m| *m > 0)
        .map_or(occurrences.len(), |m| m as usize);
    let shown = &occurrences[..limit.min(occurrences.len())];
    let mut items = String::new();
    for o in shown {
        let event = o.event;
        let open = !event.private || permission == Permission::DetailsAndPrivate;
        let sensitivity = if event.private { "Private" } else { "Normal" };
        items.push_str("<t:CalendarItem>");
        items.push_str(&format!(
            r#"<t:ItemId Id="{}" ChangeKey="DwAAABYAAAA{:04X}"/>"#,
            esc(&o.item_id(&mailbox.smtp)),
            o.index
        ));
        if open {
            if let Some(subject) = &event.subject {
                items.push_str(&format!("<t:Subject>{}</t:Subject>", esc(subject)));
            }
        }
        items.push_str(&format!(
            "<t:Sensitivity>{sensitivity}</t:Sensitivity><t:Start>{}</t:Start><t:End>{}</t:End><t:IsAllDayEvent>{}</t:IsAllDayEvent><t:LegacyFreeBusyStatus>{}</t:LegacyFreeBusyStatus>",
            utc(o.start),
            utc(o.end),
            event.all_day,
            event.busy_type.as_str()
        ));
        if open {
            if let Some(location) = &event.location {
                items.push_str(&format!("<t:Location>{}</t:Location>", esc(location)));
            }
        }
        items.push_str(&format!(
            "<t:IsMeeting>{}</t:IsMeeting><t:IsCancelled>false</t:IsCancelled><t:IsRecurring>{}</t:IsRecurring></t:CalendarItem>",
            event.meeting,
            event.recurrence.is_some()
        ));
    }
    wrap(
        "FindItemResponse",
        format!(
            r#"<m:{ELEMENT} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder TotalItemsInView="{}" IncludesLastItemInRange="{}"><t:Items>{items}</t:Items></m:RootFolder></m:{ELEMENT}>"#,
            occurrences.len(),
            shown.len() == occurrences.len()
        ),
    )
}

pub(crate) fn get_folder(state: &State, caller: &Caller, request: &types::GetFolderType) -> Answer {
    const ELEMENT: &str = "GetFolderResponseMessage";
    let (mailbox, permission) = match calendar_of(state, caller, &request.folder_ids) {
        Ok(found) => found,
        Err(error) => {
            return wrap(
                "GetFolderResponse",
                error_message(ELEMENT, error, "<m:Folders/>"),
            )
        }
    };
    let folder_id = esc(&calendar_folder_id(&mailbox.smtp)).into_owned();
    wrap(
        "GetFolderResponse",
        format!(
            r#"<m:{ELEMENT} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:CalendarFolder><t:FolderId Id="{folder_id}" ChangeKey="AgAAABQAAAA="/><t:FolderClass>IPF.Appointment</t:FolderClass><t:DisplayName>Calendar</t:DisplayName><t:TotalCount>{}</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount><t:EffectiveRights><t:CreateAssociated>false</t:CreateAssociated><t:CreateContents>false</t:CreateContents><t:CreateHierarchy>false</t:CreateHierarchy><t:Delete>false</t:Delete><t:Modify>false</t:Modify><t:Read>true</t:Read><t:ViewPrivateItems>{}</t:ViewPrivateItems></t:EffectiveRights></t:CalendarFolder></m:Folders></m:{ELEMENT}>"#,
            mailbox.events.len(),
            permission == Permission::DetailsAndPrivate
        ),
    )
}

pub(crate) fn resolve_names(state: &State, request: &types::ResolveNamesType) -> Answer {
    const ELEMENT: &str = "ResolveNamesResponseMessage";
    let entry = request.unresolved_entry.trim();
    let entry = entry
        .strip_prefix("SMTP:")
        .or_else(|| entry.strip_prefix("smtp:"))
        .unwrap_or(entry)
        .to_ascii_lowercase();
    let found: Vec<&SimMailbox> = state
        .mailboxes
        .iter()
        .filter(|m| {
            let smtp = m.smtp.to_ascii_lowercase();
            if entry.contains('@') {
                return smtp == entry;
            }
            let name = m.display_name.to_ascii_lowercase();
            !entry.is_empty()
                && (smtp.starts_with(&entry)
                    || name.starts_with(&entry)
                    || name.split_whitespace().any(|w| w.starts_with(&entry)))
        })
        .take(100)
        .collect();
    if found.is_empty() {
        return wrap(
            "ResolveNamesResponse",
            error_message(
                ELEMENT,
                (
                    "ErrorNameResolutionNoResults",
                    "No results were found.".into(),
                ),
                "",
            ),
        );
    }
    let (class, status) = if found.len() == 1 {
        (
            "Success",
            "<m:ResponseCode>NoError</m:ResponseCode>".to_owned(),
        )
    } else {
        (
            "Warning",
            "<m:MessageText>Multiple results were found.</m:MessageText><m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>".to_owned(),
        )
    };
    let mut set = format!(
        r#"<m:ResolutionSet TotalItemsInView="{}" IncludesLastItemInRange="true">"#,
        found.len()
    );
    for m in &found {
        set.push_str(&format!(
            "<t:Resolution><t:Mailbox><t:Name>{}</t:Name><t:EmailAddress>{}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox></t:Resolution>",
            esc(&m.display_name),
            esc(&m.smtp)
        ));
    }
    set.push_str("</m:ResolutionSet>");
    wrap(
        "ResolveNamesResponse",
        format!(r#"<m:{ELEMENT} ResponseClass="{class}">{status}{set}</m:{ELEMENT}>"#),
    )
}
