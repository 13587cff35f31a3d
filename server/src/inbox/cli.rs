//! `natter-hub operator add|list|remove|passwd NAME`: managing operators in the configured
//! database (`--db`, or `--redis-url` for many hubs). Passwords are read from standard input —
//! one line, so `printf '%s\n' "$PASSWORD" | natter-hub operator add ada` works in scripts —
//! never from a flag, which would leave them in shell history and `ps`. At a terminal the
//! password is typed without echo (rpassword), twice, so a typo nobody saw cannot lock the
//! operator out.

use std::io::{BufRead as _, IsTerminal as _};

use super::password;
use crate::config::{Config, OperatorAction};
use crate::error::HubError;
use crate::store::inbox::OperatorRecord;

fn unreadable(e: std::io::Error) -> HubError {
    HubError::Config(format!("cannot read the password from standard input: {e}"))
}

/// Reads a password: at a terminal without echo, prompted with `prompt` and then asked again to
/// confirm; from piped standard input as one line, without a prompt.
fn read_password(prompt: &str) -> Result<String, HubError> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password(prompt).map_err(unreadable)?;
        // The rules first: no point typing a too-short password twice.
        password::check_password(&first).map_err(HubError::Config)?;
        let again = rpassword::prompt_password("The same password again: ").map_err(unreadable)?;
        if again != first {
            return Err(HubError::Config("the two passwords differ; nothing was changed".into()));
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(unreadable)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    password::check_password(&password).map_err(HubError::Config)?;
    Ok(password)
}

/// Runs one `operator` command; the text to print on success.
pub async fn run(config: &Config, action: &OperatorAction) -> Result<String, HubError> {
    let store = crate::build_store(config).await?;
    let inbox =
        store.inbox().ok_or_else(|| HubError::Config("this storage engine keeps no operators".into()))?;
    let fail = |e: crate::store::StoreError| HubError::Store(e);
    match action {
        OperatorAction::Add { name, display_name } => {
            password::check_name(name).map_err(HubError::Config)?;
            let display_name = display_name.clone().unwrap_or_else(|| name.clone());
            password::check_display_name(&display_name).map_err(HubError::Config)?;
            let password = read_password(&format!(
                "Password for {name} (at least {} characters): ",
                password::MIN_PASSWORD_CHARS
            ))?;
            let password_hash = tokio::task::spawn_blocking(move || password::hash(&password))
                .await
                .map_err(|e| HubError::Config(e.to_string()))?
                .map_err(HubError::Config)?;
            let created_ms = u64::try_from(crate::clock::unix_ms(std::time::SystemTime::now())).unwrap_or(0);
            let record = OperatorRecord { name: name.clone(), display_name, password_hash, created_ms };
            if !inbox.add_operator(record).await.map_err(fail)? {
                return Err(HubError::Config(format!(
                    "operator {name:?} exists already; `natter-hub operator passwd {name}` sets a new password"
                )));
            }
            Ok(format!("added operator {name}; they sign in at /inbox"))
        }
        OperatorAction::List => {
            let all = inbox.operators().await.map_err(fail)?;
            if all.is_empty() {
                return Ok("no operators yet; add one with `natter-hub operator add NAME`".into());
            }
            Ok(all
                .iter()
                .map(|o| {
                    format!(
                        "{}\t{}\tadded {}",
                        o.name,
                        o.display_name,
                        crate::clock::rfc3339_at(
                            std::time::UNIX_EPOCH + std::time::Duration::from_millis(o.created_ms)
                        )
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        OperatorAction::Remove { name } => {
            if inbox.remove_operator(name).await.map_err(fail)? {
                Ok(format!("removed operator {name}; their sessions have ended"))
            } else {
                Err(HubError::Config(format!(
                    "there is no operator {name:?} (see `natter-hub operator list`)"
                )))
            }
        }
        OperatorAction::Passwd { name } => {
            if inbox.operator(name).await.map_err(fail)?.is_none() {
                return Err(HubError::Config(format!(
                    "there is no operator {name:?} (see `natter-hub operator list`)"
                )));
            }
            let password = read_password(&format!("New password for {name}: "))?;
            let password_hash = tokio::task::spawn_blocking(move || password::hash(&password))
                .await
                .map_err(|e| HubError::Config(e.to_string()))?
                .map_err(HubError::Config)?;
            inbox.set_password(name, password_hash).await.map_err(fail)?;
            Ok(format!("set a new password for {name}; their sessions have ended"))
        }
    }
}
