//! `demo`: the replicator against in-process simulators (see
//! `ews_calendar_replicator::demo`).

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ews_calendar_replicator::app::demo::{self, DemoOptions};
use ews_calendar_replicator::replication::PrivateAppointments;

#[derive(Clone, Copy, ValueEnum)]
enum Privacy {
    Skip,
    /// The configuration file's spelling; `times-only` is accepted too.
    #[value(name = "times_only", alias = "times-only")]
    TimesOnly,
    Full,
}

#[derive(Args)]
pub struct DemoArgs {
    /// UCServer users (each with an Exchange mailbox).
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Share of users not logged on (0.0 to 1.0); only they are replicated.
    #[arg(long, default_value_t = 0.6)]
    offline_fraction: f64,
    /// Calendar items per mailbox.
    #[arg(long, default_value_t = 8)]
    events: usize,
    /// Seed of the generated organisation (same seed, same data).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Calendars changed before the third cycle.
    #[arg(long, default_value_t = 5)]
    changed: usize,
    /// How private appointments are replicated.
    #[arg(long, value_enum, default_value = "skip")]
    private_appointments: Privacy,
    /// Users listed in the final table.
    #[arg(long, default_value_t = 15)]
    show_users: usize,
    /// After the cycles: seconds of calendar churn in Exchange, each change
    /// pushed to the UCServer through streaming notifications (0: none).
    #[arg(long, default_value_t = 10)]
    push_seconds: u64,
    /// Calendar changes per minute during the churn.
    #[arg(long, default_value_t = 60)]
    churn_per_minute: u32,
}

pub async fn demo(args: DemoArgs) -> Result<ExitCode, String> {
    if !(0.0..=1.0).contains(&args.offline_fraction) {
        return Err(format!(
            "--offline-fraction {} is not between 0.0 and 1.0",
            args.offline_fraction
        ));
    }
    let options = DemoOptions {
        users: args.users,
        offline_fraction: args.offline_fraction,
        events_per_user: args.events,
        seed: args.seed,
        changed: args.changed,
        private_appointments: match args.private_appointments {
            Privacy::Skip => PrivateAppointments::Skip,
            Privacy::TimesOnly => PrivateAppointments::TimesOnly,
            Privacy::Full => PrivateAppointments::Full,
        },
        show_users: args.show_users,
        push_seconds: args.push_seconds,
        churn_per_minute: args.churn_per_minute,
    };
    let mut stdout = std::io::stdout().lock();
    demo::run(&options, &mut stdout).await?;
    Ok(ExitCode::SUCCESS)
}
