//! CoreDNS's command line, parsed as Go's `flag` package does: `-flag`, `--flag`, `-flag=value`
//! and `-flag value` (bool flags take no separate value), flags before any positional argument.

use std::path::PathBuf;

/// The command-line settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cli {
    pub conf: Option<PathBuf>,
    pub dns_port: u16,
    pub pidfile: Option<PathBuf>,
    pub plugins: bool,
    pub quiet: bool,
    pub version: bool,
    pub validate: bool,
    pub help: bool,
}

impl Default for Cli {
    fn default() -> Cli {
        Cli {
            conf: None,
            dns_port: 53,
            pidfile: None,
            plugins: false,
            quiet: false,
            version: false,
            validate: false,
            help: false,
        }
    }
}

pub const USAGE: &str = "Usage of clusterdns:
  -conf string
        Corefile to load (default \"Corefile\")
  -dns.port string
        Default port (default \"53\")
  -p string
        Default port (shorthand of -dns.port)
  -pidfile string
        File path to write pid file
  -plugins
        List installed plugins, in execution order
  -quiet
        Quiet mode (no initialization output)
  -validate
        Check the Corefile and every directive's options, print every error with its position, and exit
  -version
        Show version
";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut cli = Cli::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-" || arg == "--" || !arg.starts_with('-') {
            // Go stops at the first non-flag; clusterdns takes no positional arguments.
            return Err(format!("unexpected argument: {arg}"));
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args.next().ok_or_else(|| format!("flag needs an argument: -{flag}")),
            }
        };
        match name {
            "conf" => cli.conf = Some(PathBuf::from(value(name)?)),
            "dns.port" | "p" => {
                let v = value(name)?;
                cli.dns_port = v.parse().map_err(|_| format!("invalid value {v:?} for flag -{name}: not a port"))?;
            }
            "pidfile" => cli.pidfile = Some(PathBuf::from(value(name)?)),
            "plugins" => cli.plugins = parse_bool(name, &inline)?,
            "quiet" => cli.quiet = parse_bool(name, &inline)?,
            "version" => cli.version = parse_bool(name, &inline)?,
            "validate" => cli.validate = parse_bool(name, &inline)?,
            "h" | "help" => cli.help = true,
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    Ok(cli)
}

/// Go's bool flag values (`-quiet`, `-quiet=true`, `-quiet=0` ...).
fn parse_bool(name: &str, inline: &Option<String>) -> Result<bool, String> {
    match inline.as_deref() {
        None => Ok(true),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(format!("invalid boolean value {v:?} for -{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_flag_spellings() {
        let want = Cli { conf: Some("/etc/Corefile".into()), dns_port: 1053, quiet: true, ..Cli::default() };
        assert_eq!(p(&["-conf", "/etc/Corefile", "-dns.port", "1053", "-quiet"]), Ok(want.clone()));
        assert_eq!(p(&["--conf=/etc/Corefile", "--dns.port=1053", "--quiet=true"]), Ok(want.clone()));
        assert_eq!(p(&["-conf=/etc/Corefile", "-p", "1053", "-quiet"]), Ok(want));
        assert_eq!(p(&[]), Ok(Cli::default()));
        assert!(p(&["-plugins"]).unwrap().plugins);
        assert!(p(&["-validate", "-conf", "x"]).unwrap().validate);
        assert_eq!(p(&["-pidfile", "/run/x.pid"]).unwrap().pidfile, Some("/run/x.pid".into()));
    }

    #[test]
    fn errors_like_go() {
        assert_eq!(p(&["-bogus"]), Err("flag provided but not defined: -bogus".into()));
        assert_eq!(p(&["-conf"]), Err("flag needs an argument: -conf".into()));
        assert_eq!(p(&["-dns.port", "x"]), Err("invalid value \"x\" for flag -dns.port: not a port".into()));
        assert_eq!(p(&["-quiet=maybe"]), Err("invalid boolean value \"maybe\" for -quiet".into()));
        assert_eq!(p(&["Corefile"]), Err("unexpected argument: Corefile".into()));
    }
}
