//! Refresh-token revocation at logout.
//!
//! TokenIDP's is not RFC 7009: `DELETE /revoke` with `Authorization: Bearer <access token>`
//! and JSON `{"token": <refresh token>, "reasonRevoked": "logout"}`; it answers 200 whether or
//! not anything was revoked. OAuth 2.0 providers get RFC 7009: a form POST with
//! `token_type_hint=refresh_token` and the client's credentials (a secret, or a fresh client
//! assertion whose `aud` is the token endpoint, which providers accept here too).

use super::{IdpClient, IdpError, Transient};
use crate::config::Dialect;
use crate::secret::{AccessToken, RefreshToken};
use serde_json::json;

impl IdpClient {
    /// Revokes `refresh_token`. `Ok(false)` when the IdP has no revocation endpoint.
    pub async fn revoke(
        &self,
        refresh_token: &RefreshToken,
        access_token: &AccessToken,
    ) -> Result<bool, IdpError> {
        let metadata = self
            .metadata()
            .ok_or(IdpError::transient(Transient::NotDiscovered))?;
        let Some(endpoint) = metadata.revocation_endpoint.clone() else {
            return Ok(false);
        };
        let method = match self.config().dialect {
            Dialect::TokenIdp => "DELETE",
            Dialect::OAuth2 => "POST",
        };
        let span = self.traces().idp("idp.revoke", method, &endpoint);
        let request = match self.config().dialect {
            Dialect::TokenIdp => self
                .http()
                .delete(endpoint)
                .bearer_auth(access_token.expose())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(
                    json!({"token": refresh_token.expose(), "reasonRevoked": "logout"}).to_string(),
                ),
            Dialect::OAuth2 => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("token", refresh_token.expose());
                form.append_pair("token_type_hint", "refresh_token");
                let mut request = self.http().post(endpoint);
                let credentials = self.credentials(metadata)?;
                let client_id = &self.config().client_id;
                if let Some(basic) = credentials.basic_header(client_id) {
                    request = request.header(http::header::AUTHORIZATION, basic);
                }
                credentials.append_to_form(client_id, &mut form);
                request
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.finish())
            }
        };
        let response = crate::trace::inject_reqwest(&span, request)
            .send()
            .await
            .map_err(|e| {
                crate::trace::record_error(&span);
                super::response::unreachable("revocation endpoint", &e)
            })?;
        let status = response.status().as_u16();
        crate::trace::record_status(&span, status, !(200..300).contains(&status));
        if (200..300).contains(&status) {
            Ok(true)
        } else {
            Err(IdpError::transient(Transient::Status(status)))
        }
    }
}
