//! Outgoing email through lettre: SMTP when `SMTP_HOST` is set, otherwise each message is
//! written as an `.eml` file to `SIARAN_MAIL_DIR` and logged, so development needs no mail
//! server. Every message carries a plain-text and an HTML part.
//!
//! Features build an [`Email`] (the content); this module owns transport, sender and layout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};

/// An SMTP conversation may take this long before it counts as failed (and is retried).
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// One message to one person.
#[derive(Debug, Clone)]
pub struct Email {
    pub to_name: String,
    pub to_address: String,
    pub subject: String,
    pub text: String,
    /// The body's HTML, without the surrounding document (the layout adds it).
    pub html: String,
    /// A `Message-ID` fixed by the caller, so that a message sent again after a crash (sent,
    /// then killed before it was marked sent) is the same message to mail clients and servers,
    /// which show one. `None`: a fresh one.
    pub message_id: Option<String>,
}

/// Sends email. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::Smtp(_) => "smtp".to_owned(),
            Transport::Folder(_, dir) => format!("folder {}", dir.display()),
        };
        f.debug_struct("Mailer")
            .field("transport", &transport)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// Builds the transport the settings ask for (no connection is made yet).
    pub fn from_config(config: &SmtpConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .with_context(|| format!("MAIL_FROM is not a valid mailbox: {}", config.from))?;
        let transport = match &config.host {
            Some(host) if !host.trim().is_empty() => {
                let builder = match config.tls {
                    SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .context("SMTP_HOST")?,
                    SmtpTls::Tls => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(host).context("SMTP_HOST")?
                    }
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                };
                let mut builder = builder.port(config.port).timeout(Some(SMTP_TIMEOUT));
                if let (Some(user), Some(password)) = (&config.username, &config.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Transport::Smtp(builder.build())
            }
            _ => Transport::Folder(
                AsyncFileTransport::<Tokio1Executor>::new(&config.mail_dir),
                config.mail_dir.clone(),
            ),
        };
        Ok(Self { transport, from })
    }

    /// Sends one message (or writes it to the mail folder).
    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        let to = Mailbox::new(
            Some(email.to_name.clone()),
            email
                .to_address
                .parse()
                .with_context(|| format!("invalid recipient address {}", email.to_address))?,
        );
        let message = Message::builder()
            .message_id(email.message_id.clone())
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                layout(&email.subject, &email.html),
            ))
            .context("building the message")?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await.context("sending over SMTP")?;
                tracing::info!(to = %email.to_address, subject = %email.subject, "email sent");
            }
            Transport::Folder(folder, dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .with_context(|| format!("creating {}", dir.display()))?;
                let id = folder.send(message).await.context("writing the email")?;
                tracing::info!(
                    to = %email.to_address,
                    subject = %email.subject,
                    file = %dir.join(format!("{id}.eml")).display(),
                    "email written to the mail folder (no SMTP_HOST)"
                );
            }
        }
        Ok(())
    }
}

/// Escapes text for HTML element content and attribute values.
#[must_use]
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

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="id"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="margin:0;padding:24px;background:#f4f4f7;font-family:system-ui,sans-serif;color:#1f2330">
<div style="max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:24px">
{body}
<p style="margin-top:32px;color:#7a7f8c;font-size:12px">Siaran</p>
</div></body></html>"#,
        title = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<b onclick="x">Tom & 'Jerry'</b>"#),
            "&lt;b onclick=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
    }
}
