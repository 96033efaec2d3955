//! `portcullis users`: bootstrapping the user store from the command line, as the system
//! (audited with no actor): create the first owner or admin (and its company) with an API key,
//! issue and revoke API keys, list users. Everything after that goes through the governed
//! `/v1/` API.

use std::sync::Arc;

use clap::{Args, Subcommand};
use portcullis_store::{Audit, NewCompany, NewUser, StoreError, UserQuery, UserStore};
use serde_json::json;

use super::migrate::{block_on, DatabaseArgs};
use super::{EXIT_ERROR, EXIT_OK};

/// Arguments of `portcullis users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user (and its company when new) and print it with a new API key, as JSON.
    Create(Box<CreateArgs>),
    /// Issue an API key for a user; the key is printed once.
    Key {
        /// The user id.
        #[arg(long)]
        user: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Revoke an API key by id.
    RevokeKey {
        /// The key id (the `<id>` of `pck_<id>_<secret>`).
        id: String,
    },
    /// Create a company, or change its user limit when it exists.
    Company {
        /// The company id.
        id: String,
        /// Account type (customer, carrier, shipper, forwarder…); required to create.
        #[arg(long)]
        account_type: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Parent company (enterprise accounts).
        #[arg(long)]
        parent: Option<String>,
        /// Most active users.
        #[arg(long)]
        user_limit: Option<u32>,
        /// Remove the user limit.
        #[arg(long, conflicts_with = "user_limit")]
        no_limit: bool,
    },
    /// Create a permission group (the features are the role model's feature names).
    Group {
        /// Its name (as in roles.toml's groups, whose features the engine gives its members).
        name: String,
        /// A feature of the group (repeat).
        #[arg(long = "feature")]
        features: Vec<String>,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Make it the default group of new users.
        #[arg(long)]
        default: bool,
    },
    /// Make a group the default of new users (`--none`: no default).
    DefaultGroup {
        /// The group.
        name: Option<String>,
        /// No default group.
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Delete a permission group no user is in.
    DeleteGroup {
        /// The group.
        name: String,
    },
    /// Set a user's password, read from the first line of standard input (checked against
    /// the folder's `[sign_in]` rule, hashed with argon2id); unlocks the user and ends its
    /// sessions.
    Password {
        /// The user id.
        #[arg(long)]
        user: String,
        /// The policy folder whose password rule applies.
        #[arg(long, default_value = "policies")]
        folder: std::path::PathBuf,
    },
    /// Deactivate a user (denied everything, its sessions and keys refused; history kept).
    Deactivate {
        /// The user id.
        #[arg(long)]
        user: String,
    },
    /// Reactivate a user (within its company's user limit).
    Reactivate {
        /// The user id.
        #[arg(long)]
        user: String,
    },
    /// Create a company's secure token link (a session as its token-link user while it has no
    /// portal user); prints the link and its token, once, as JSON.
    Link {
        /// The company.
        #[arg(long)]
        company: String,
    },
    /// List the users of a company, as JSON lines.
    List {
        /// The company.
        #[arg(long)]
        company: Option<String>,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The company; created when it does not exist (then `--account-type` is required).
    #[arg(long)]
    company: String,
    /// Account type of a new company (customer, carrier, shipper, forwarder…).
    #[arg(long)]
    account_type: Option<String>,
    /// Display name of a new company.
    #[arg(long)]
    company_name: Option<String>,
    /// Parent of a new company (enterprise accounts).
    #[arg(long)]
    parent: Option<String>,
    /// User limit of a new company.
    #[arg(long)]
    user_limit: Option<u32>,
    /// The user id [default: a random UUID].
    #[arg(long)]
    id: Option<String>,
    /// Login.
    #[arg(long)]
    login: String,
    /// Email.
    #[arg(long)]
    email: Option<String>,
    /// Display name.
    #[arg(long, default_value = "")]
    name: String,
    /// Role, e.g. `owner` or `admin`.
    #[arg(long)]
    role: String,
    /// Permission group [default: the store's default group].
    #[arg(long)]
    group: Option<String>,
    /// A stored attribute the folder declares, as `name=JSON` (Cedar JSON: `true`,
    /// `["a","b"]`, `{"__entity":{"type":"Portal::Location","id":"l1"}}`); repeat for more.
    /// Attributes not given get the folder's default when decisions are made.
    #[arg(long = "attr", value_name = "NAME=JSON", value_parser = parse_attr)]
    attrs: Vec<(String, serde_json::Value)>,
    /// An attribute of a new company, as `name=JSON`; repeat for more.
    #[arg(long = "company-attr", value_name = "NAME=JSON", value_parser = parse_attr)]
    company_attrs: Vec<(String, serde_json::Value)>,
    /// A further company the user may access with the same role (enterprise accounts: the
    /// first Administrator of several companies); repeat for more. The company must exist.
    #[arg(long = "access", value_name = "COMPANY")]
    access: Vec<String>,
    /// Do not issue an API key.
    #[arg(long)]
    no_key: bool,
}

/// `name=JSON`; a value that is not JSON is taken as a string.
fn parse_attr(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected NAME=JSON, e.g. `locations=[]`"))?;
    if name.is_empty() {
        return Err(format!("`{text}`: the attribute name is empty"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

fn fail(e: impl std::fmt::Display) -> u8 {
    eprintln!("error: {e}");
    EXIT_ERROR
}

async fn create(store: Arc<dyn UserStore>, a: CreateArgs) -> Result<serde_json::Value, String> {
    let audit = Audit::system().with("via", "portcullis users");
    match store.get_company(&a.company).await {
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => {
            let Some(account_type) = a.account_type.clone() else {
                return Err(format!(
                    "company `{}` does not exist; give `--account-type` to create it",
                    a.company
                ));
            };
            let new = NewCompany {
                id: a.company.clone(),
                name: a.company_name.clone().unwrap_or_else(|| a.company.clone()),
                account_type,
                parent: a.parent.clone(),
                user_limit: a.user_limit,
                attrs: a.company_attrs.iter().cloned().collect(),
            };
            store
                .create_company(new, &audit)
                .await
                .map_err(|e| e.to_string())?;
        }
        Err(e) => return Err(e.to_string()),
    }
    // Every further company exists before anything is written.
    for c in &a.access {
        match store.get_company(c).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(format!(
                    "`--access {c}`: company `{c}` does not exist; create it first"
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let attrs: serde_json::Map<String, serde_json::Value> = a.attrs.into_iter().collect();
    let user = store
        .create_user(
            NewUser {
                id: a.id,
                company: a.company,
                login: a.login,
                email: a.email,
                name: a.name,
                role: a.role,
                group: a.group,
                attrs,
                ..NewUser::default()
            },
            &audit,
        )
        .await
        .map_err(|e| e.to_string())?;
    let user = if a.access.is_empty() {
        user
    } else {
        let companies = a
            .access
            .iter()
            .map(|c| portcullis_store::AccessibleCompany {
                company: c.clone(),
                role: None,
            })
            .collect();
        store
            .set_accessible_companies(&user.id, companies, &audit)
            .await
            .map_err(|e| e.to_string())?
    };
    let key = if a.no_key {
        None
    } else {
        let k = store
            .create_api_key(&user.id, "bootstrap", None, &audit)
            .await
            .map_err(|e| e.to_string())?;
        Some(k.secret.expose().to_owned())
    };
    Ok(json!({ "user": user, "api_key": key }))
}

async fn set_password(store: &dyn UserStore, user: &str, folder: &std::path::Path) -> Result<(), String> {
    let u = store.get_user(user).await.map_err(|e| e.to_string())?;
    let rules = portcullis_engine::SourceSet::read(folder, portcullis_engine::SourceLimits::default())
        .ok()
        .and_then(|set| portcullis_engine::Snapshot::build(set).ok())
        .and_then(|s| s.model().map(|m| m.sign_in.clone()))
        .unwrap_or_default();
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    let context = [u.login.as_str(), u.email.as_deref().unwrap_or("")];
    portcullis_server::auth::password::check_rule(&rules, &password, &context).map_err(|e| e.0)?;
    let defaults = portcullis_server::config::SignInConfig::default();
    let params = portcullis_server::auth::password::HashParams {
        memory_kib: defaults.argon2_memory_kib,
        iterations: defaults.argon2_iterations,
        lanes: defaults.argon2_lanes,
    };
    let hasher = portcullis_server::auth::password::Hasher::new(params, 1).map_err(|e| e.to_string())?;
    let phc = hasher.hash(password).await.map_err(|e| e.to_string())?;
    let audit = Audit::system().with("via", "portcullis users password");
    store
        .change_password(user, phc, None, &audit)
        .await
        .map_err(|e| e.to_string())?;
    store.unlock_user(user, &audit).await.map_err(|e| e.to_string())
}

pub fn run(a: UsersArgs) -> u8 {
    block_on(async move {
        let store = match portcullis_server::manage::open_store(&a.db.url()).await {
            Ok((s, _)) => s,
            Err(e) => return fail(e),
        };
        let audit = Audit::system().with("via", "portcullis users");
        match a.command {
            UsersCommand::Create(c) => match create(store, *c).await {
                Ok(v) => {
                    println!("{v}");
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::Key { user, name } => {
                match store.create_api_key(&user, &name, None, &audit).await {
                    Ok(k) => {
                        println!(
                            "{}",
                            json!({ "id": k.key.id, "user": k.key.user, "api_key": k.secret.expose() })
                        );
                        EXIT_OK
                    }
                    Err(e) => fail(e),
                }
            }
            UsersCommand::RevokeKey { id } => match store.revoke_api_key(&id, &audit).await {
                Ok(k) => {
                    println!("revoked api key `{}` of user `{}`", k.id, k.user);
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::Company {
                id,
                account_type,
                name,
                parent,
                user_limit,
                no_limit,
            } => match store.get_company(&id).await {
                Ok(_) => {
                    let patch = portcullis_store::CompanyPatch {
                        name,
                        account_type,
                        user_limit: if no_limit {
                            Some(None)
                        } else {
                            user_limit.map(Some)
                        },
                        attrs: None,
                    };
                    match store.update_company(&id, patch, &audit).await {
                        Ok(c) => {
                            println!("{}", json!(c));
                            EXIT_OK
                        }
                        Err(e) => fail(e),
                    }
                }
                Err(StoreError::NotFound { .. }) => {
                    let Some(account_type) = account_type else {
                        return fail(format!(
                            "company `{id}` does not exist; give `--account-type` to create it"
                        ));
                    };
                    let new = NewCompany {
                        name: name.unwrap_or_else(|| id.clone()),
                        id,
                        account_type,
                        parent,
                        user_limit,
                        attrs: Default::default(),
                    };
                    match store.create_company(new, &audit).await {
                        Ok(c) => {
                            println!("{}", json!(c));
                            EXIT_OK
                        }
                        Err(e) => fail(e),
                    }
                }
                Err(e) => fail(e),
            },
            UsersCommand::Group {
                name,
                features,
                description,
                default,
            } => {
                let new = portcullis_store::NewGroup {
                    name,
                    description,
                    features,
                    is_default: default,
                };
                match store.create_group(new, &audit).await {
                    Ok(g) => {
                        println!("{}", json!(g));
                        EXIT_OK
                    }
                    Err(e) => fail(e),
                }
            }
            UsersCommand::DefaultGroup { name, none: _ } => {
                match store.set_default_group(name.as_deref(), &audit).await {
                    Ok(()) => {
                        println!("default group: {}", name.as_deref().unwrap_or("(none)"));
                        EXIT_OK
                    }
                    Err(e) => fail(e),
                }
            }
            UsersCommand::DeleteGroup { name } => match store.delete_group(&name, &audit).await {
                Ok(()) => {
                    println!("deleted group `{name}`");
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::Password { user, folder } => match set_password(&*store, &user, &folder).await {
                Ok(()) => {
                    println!("password set for user `{user}`");
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::Deactivate { user } => match store.deactivate_user(&user, &audit).await {
                Ok(u) => {
                    println!("{}", json!(u));
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::Reactivate { user } => match store.reactivate_user(&user, &audit).await {
                Ok(u) => {
                    println!("{}", json!(u));
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::Link { company } => match store.create_company_link(&company, &audit).await {
                Ok((link, token)) => {
                    println!("{}", json!({ "link": link, "token": token.expose() }));
                    EXIT_OK
                }
                Err(e) => fail(e),
            },
            UsersCommand::List { company } => {
                let mut after = None;
                loop {
                    let q = UserQuery {
                        company: company.clone(),
                        include_inactive: true,
                        after: after.take(),
                        limit: None,
                    };
                    match store.list_users(&q).await {
                        Ok(page) => {
                            for u in &page.items {
                                println!("{}", json!(u));
                            }
                            match page.next {
                                Some(n) => after = Some(n),
                                None => return EXIT_OK,
                            }
                        }
                        Err(e) => return fail(e),
                    }
                }
            }
        }
    })
}
