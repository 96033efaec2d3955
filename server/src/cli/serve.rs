//! `portcullis serve`: the decision server.
//!
//! Settings are layered: defaults → `portcullis.toml` (or `--config`) → `PORTCULLIS_*`
//! environment → these flags. SIGHUP reloads the policy folder; SIGTERM and SIGINT stop
//! accepting, let in-flight requests finish, then exit 0.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args};
use portcullis_server::config::{settings, Config, Kind, Layer, LogFormat, DEFAULT_CONFIG_FILE};
use portcullis_server::Server;
use tracing_subscriber::EnvFilter;

use super::{EXIT_ERROR, EXIT_OK};

/// Arguments of `portcullis serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The policy folder (the setting `policies`).
    #[arg(conflicts_with = "policies")]
    folder: Option<String>,
    #[arg(long, help = format!("A config file [default: {DEFAULT_CONFIG_FILE} when present]"))]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    flags: Flags,
}

/// A flag for every setting, made from its declaration in `config::Settings`; the layer they
/// give, or what is wrong with one.
#[derive(Debug, Clone)]
struct Flags(Result<Layer, String>);

impl Args for Flags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        settings().into_iter().fold(cmd, |cmd, s| {
            let mut help = s.doc.clone();
            if s.flag_turns_off() {
                help = format!("Turns off `{}`: {help}", s.key);
            }
            if let Some(d) = &s.default {
                help.push_str(&format!(" [default: {d}]"));
            }
            help.push_str(&format!(" [env: {}]", s.env()));
            let arg = Arg::new(s.key.clone())
                .long(s.long())
                .help(help)
                .value_name(s.key.to_uppercase());
            cmd.arg(match s.kind {
                Kind::Bool => arg.action(ArgAction::SetTrue),
                Kind::List => arg.action(ArgAction::Append).value_delimiter(','),
                _ if !s.values.is_empty() => {
                    arg.value_parser(clap::builder::PossibleValuesParser::new(s.values))
                }
                _ => arg,
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Flags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut layer = Layer::default();
        for s in settings() {
            if m.value_source(&s.key) != Some(ValueSource::CommandLine) {
                continue;
            }
            // A flag of a setting true by default (`--no-watch`) turns it off, else on.
            let raw = match s.kind {
                Kind::Bool => vec![(!s.flag_turns_off()).to_string()],
                _ => m
                    .get_many::<String>(&s.key)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
            };
            // Said by `run` like a bad variable, rather than as a clap error without usage.
            if let Err(e) = layer.set_text(&s, &format!("--{}", s.long()), &raw) {
                return Ok(Self(Err(e)));
            }
        }
        Ok(Self(Ok(layer)))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl ServeArgs {
    /// The flags' layer, the folder argument as `policies`.
    fn layer(&self) -> Result<Layer, String> {
        let flags = self.flags.0.clone()?;
        Ok(match &self.folder {
            Some(f) => flags.set("policies", f.as_str()),
            None => flags,
        })
    }
}

fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or collector gets plain text (and every
    // request's span is formatted without escape codes).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn until_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(a: ServeArgs) -> u8 {
    let resolved = a.layer().and_then(|flags| {
        Config::resolve(a.config.as_deref(), std::env::vars(), flags).map_err(|e| e.to_string())
    });
    let config = match resolved {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    init_logs(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(async move {
        let root = super::root_name(&config.policies);
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(portcullis_server::StartError::Build(e)) => {
                eprint!("{}", e.diagnostics.render_human(&root));
                return EXIT_ERROR;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_ERROR;
            }
        };
        #[cfg(unix)]
        let _hup = portcullis_server::reload::on_sighup(server.reloader.trigger.clone());
        eprintln!("portcullis: serving on {}", server.url());
        until_signal().await;
        // Not ready from now on; still answering for `drain_delay`, then draining.
        server.state.start_draining();
        let delay = server.state.config.drain_delay;
        if !delay.is_zero() {
            tracing::info!(delay_ms = delay.as_millis(), "draining: /readyz answers 503");
            tokio::time::sleep(delay).await;
        }
        server.shutdown().await;
        EXIT_OK
    })
}
