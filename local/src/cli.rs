//! The host's command line: one flag per setting of the catalog (each also read from its
//! environment variable), so `--help` lists every setting with its default from the one place
//! they are defined; secrets are read from the environment only.

use std::collections::HashMap;

use clap::{Arg, ArgAction, ArgMatches, Command, parser::ValueSource};
use koogallery::config::{
    Env,
    catalog::{self, Origin, Setting},
};

/// The command: serving is the default; the subcommands are the host's one-off tasks.
pub fn command(program: &'static str) -> Command {
    let settings = catalog::ALL
        .iter()
        .filter(|s| s.origin == Origin::Operator)
        .map(|s| setting_arg(s));
    Command::new(program)
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "The KooGallery production interface, its worker and its timers in one process, on \
             the embedded store (or, with --backend aws, on DynamoDB and SQS). Every option is \
             also read from the environment variable shown; an option given here wins.",
        )
        .args(settings)
        .after_help(secrets_help())
        .subcommand(Command::new("kit-public-key").about(
            "print the Kit RSA public key (PEM) to upload in the seller console, generating the key on first use",
        ))
        .subcommand(passthrough(
            "oidc-client",
            "register one of your applications as an OIDC client: oidc-client add --name NAME --redirect-uri URI …",
        ))
        .subcommand(passthrough(
            "license-upload",
            "deliver a string or a file for a marketplace event: license-upload --event-id ID (--characters TEXT | --file PATH)",
        ))
}

/// `--listen` for `KOOGALLERY_LISTEN`, `--port` for `PORT`, and so on.
fn flag_name(setting: &Setting) -> String {
    setting
        .name
        .strip_prefix("KOOGALLERY_")
        .unwrap_or(setting.name)
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn setting_arg(setting: &'static Setting) -> Arg {
    let help = match setting.default {
        Some(default) => format!("{} [default: {default}]", setting.help),
        None => setting.help.to_owned(),
    };
    Arg::new(setting.name)
        .long(flag_name(setting))
        .env(setting.name)
        // An environment may hold a URL with credentials in it: --help never shows values.
        .hide_env_values(true)
        .value_name("VALUE")
        .action(ArgAction::Set)
        .help(help)
}

fn passthrough(name: &'static str, about: &'static str) -> Command {
    Command::new(name).about(about).arg(
        Arg::new("args")
            .num_args(0..)
            .trailing_var_arg(true)
            .allow_hyphen_values(true),
    )
}

fn secrets_help() -> String {
    let mut text = String::from(
        "Keys and passwords, from the environment only (a command line is visible to every user \
         of the machine):\n",
    );
    for s in catalog::ALL.iter().filter(|s| s.origin == Origin::Secret) {
        text.push_str(&format!("  {:<36} {}\n", s.name, s.help));
    }
    text
}

/// The values given as options, by variable name; those from the environment are left to it.
pub fn given_on_command_line(matches: &ArgMatches) -> HashMap<String, String> {
    catalog::ALL
        .iter()
        .filter(|s| s.origin == Origin::Operator)
        .filter(|s| matches.value_source(s.name) == Some(ValueSource::CommandLine))
        .filter_map(|s| {
            let value = matches.get_one::<String>(s.name)?;
            Some((s.name.to_owned(), value.clone()))
        })
        .collect()
}

/// The host's process: parses the command line (`--help` and bad options exit here), then serves
/// or runs the subcommand.
pub async fn main(program: &'static str) -> std::process::ExitCode {
    let matches = command(program).get_matches();
    Env::use_command_line(given_on_command_line(&matches));
    let rest = |m: &ArgMatches| -> Vec<String> {
        m.get_many::<String>("args")
            .map(|args| args.cloned().collect())
            .unwrap_or_default()
    };
    match matches.subcommand() {
        Some(("kit-public-key", _)) => crate::print_kit_public_key(program),
        Some(("oidc-client", m)) => crate::oidc_client_command(program, &rest(m)),
        Some(("license-upload", m)) => crate::license_upload_command(program, &rest(m)).await,
        _ => crate::main_from_env(program).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help() -> String {
        command("koogallery-local").render_long_help().to_string()
    }

    #[test]
    fn help_lists_every_operator_setting_with_its_default_and_every_secret_by_name() {
        let help = help();
        for s in catalog::ALL {
            match s.origin {
                Origin::Operator => {
                    assert!(help.contains(&format!("--{}", flag_name(s))), "{}", s.name);
                    assert!(help.contains(s.name), "{} has no env", s.name);
                    if let Some(default) = s.default {
                        assert!(
                            help.contains(&format!("[default: {default}]")),
                            "{}: default {default} not shown",
                            s.name
                        );
                    }
                }
                Origin::Secret => assert!(help.contains(s.name), "secret {}", s.name),
                Origin::Template | Origin::Retired => {}
            }
        }
    }

    #[test]
    fn a_secret_has_no_option() {
        let cmd = command("koogallery-local");
        let access_key = catalog::ACCESS_KEY.name;
        assert!(cmd.get_arguments().all(|a| a.get_id() != access_key));
        let refused = command("koogallery-local").try_get_matches_from([
            "koogallery-local",
            "--access-key",
            "x",
        ]);
        assert!(refused.is_err());
    }

    #[test]
    fn an_option_given_wins_and_only_options_given_are_taken() {
        let matches = command("koogallery-local")
            .try_get_matches_from([
                "koogallery-local",
                "--listen",
                "0.0.0.0:8443",
                "--tls-cert=/etc/koogallery/tls/cert.pem",
            ])
            .expect("parses");
        let given = given_on_command_line(&matches);
        assert_eq!(given.len(), 2, "{given:?}");
        assert_eq!(given["KOOGALLERY_LISTEN"], "0.0.0.0:8443");
        assert_eq!(given["KOOGALLERY_TLS_CERT"], "/etc/koogallery/tls/cert.pem");
        let env = Env::from_fn(|name| given.get(name).cloned());
        let settings = crate::LocalSettings::read(&env);
        // The certificate without its key is refused, naming the missing one.
        let e = settings.unwrap_err().to_string();
        assert!(e.contains("KOOGALLERY_TLS_KEY"), "{e}");
    }

    #[test]
    fn subcommands_keep_their_own_arguments() {
        let matches = command("koogallery-local")
            .try_get_matches_from([
                "koogallery-local",
                "oidc-client",
                "add",
                "--name",
                "crm",
                "--redirect-uri",
                "https://crm.example.com/cb",
            ])
            .expect("parses");
        let (name, sub) = matches.subcommand().expect("a subcommand");
        assert_eq!(name, "oidc-client");
        let args: Vec<&String> = sub.get_many("args").expect("args").collect();
        assert_eq!(args.len(), 5);
        assert_eq!(args[1], "--name");
    }
}
