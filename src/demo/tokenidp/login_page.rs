//! The HTML login form of `LoginMode::Form`: one small plain page that says loudly that it is
//! a development IdP.

use crate::html::escape;

/// Everything the form shows.
#[derive(Debug)]
pub(super) struct LoginPage<'a> {
    /// The authorize parameters, carried through the POST in hidden fields.
    pub hidden: Vec<(&'a str, &'a str)>,
    /// Prefilled values of the two fields.
    pub login: &'a str,
    pub password: &'a str,
    /// The demo account's credentials, shown as a hint (development only, on purpose).
    pub hint: Option<(&'a str, &'a str)>,
    pub error: Option<&'a str>,
}

impl LoginPage<'_> {
    pub(super) fn render(&self) -> String {
        let mut hidden = String::new();
        for (name, value) in &self.hidden {
            hidden.push_str(&format!(
                "    <input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(name),
                escape(value)
            ));
        }
        let error = self
            .error
            .map(|e| format!("  <p class=\"error\" role=\"alert\">{}</p>\n", escape(e)))
            .unwrap_or_default();
        let hint = self
            .hint
            .map(|(login, password)| {
                format!(
                    "  <p class=\"hint\">Demo account: login <code>{}</code>, password <code>{}</code></p>\n",
                    escape(login),
                    escape(password)
                )
            })
            .unwrap_or_default();
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>TokenIDP (development)</title>
  <style>
    body {{ font-family: sans-serif; max-width: 26rem; margin: 2rem auto; padding: 0 1rem; }}
    .banner {{ background: #b00020; color: #fff; padding: .6rem .8rem; font-weight: bold; }}
    .error {{ color: #b00020; }}
    label {{ display: block; margin: .8rem 0; }}
    input[type=text], input[type=password] {{ display: block; width: 100%; padding: .3rem; }}
  </style>
</head>
<body>
  <p class="banner" id="dev-banner">Development identity provider: for demos and tests only. Never use real credentials here.</p>
  <h1>Sign in to TokenIDP</h1>
{error}  <form method="post" action="/authorize">
{hidden}    <label>Login <input type="text" name="login" autocomplete="username" value="{login}" required></label>
    <label>Password <input type="password" name="password" autocomplete="current-password" value="{password}" required></label>
    <button type="submit">Sign in</button>
  </form>
{hint}</body>
</html>
"#,
            login = escape(self.login),
            password = escape(self.password),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = LoginPage {
            hidden: vec![("state", "\"><script>x</script>")],
            login: "a&b",
            password: "",
            hint: None,
            error: Some("<b>"),
        }
        .render();
        assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(page.contains("a&amp;b"));
        assert!(page.contains("&lt;b&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("<title>TokenIDP (development)</title>"));
    }
}
