//! The sandbox's browser side: the payment page a buyer sees at `redirect_url`, and `snap.js`,
//! which shows that page in an overlay and reports the outcome to the merchant's callbacks as
//! Snap.js does.

use serde_json::Value;

use crate::wire::{escape, rupiah};

/// What the payment page shows.
#[derive(Debug)]
pub(crate) struct PageOrder<'a> {
    pub token: &'a str,
    pub order_id: &'a str,
    pub amount: i64,
    pub item: &'a str,
    pub customer: &'a str,
    pub client_key_set: bool,
    pub status: Option<&'a str>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f3f5f9;color:#1f2330}\
main{max-width:420px;margin:24px auto;background:#fff;border-radius:10px;padding:20px 24px;box-shadow:0 2px 12px #0002}\
h1{font-size:18px;margin:0 0 4px}.amount{font-size:28px;font-weight:700;margin:12px 0}\
.muted{color:#6b7280;font-size:13px}.badge{display:inline-block;background:#fde68a;border-radius:4px;padding:2px 6px;font-size:12px}\
form{margin:8px 0}button{width:100%;padding:10px;border:0;border-radius:6px;font-size:15px;cursor:pointer}\
.pay{background:#0f9d58;color:#fff}.alt{background:#e5e7eb}.bad{background:#fee2e2;color:#991b1b}";

pub(crate) fn payment(order: &PageOrder<'_>) -> String {
    let token = escape(order.token);
    let button = |action: &str, class: &str, label: &str| {
        format!(
            r#"<form method="post" action="/snap/v4/redirection/{token}/{action}"><button class="{class}" data-action="{action}" type="submit">{label}</button></form>"#
        )
    };
    let actions = match order.status {
        None => [
            button("pay", "pay", "Pay now (QRIS, settles at once)"),
            button("card", "alt", "Pay by card 4811 1111 1111 1114 (accepted)"),
            button(
                "challenge",
                "alt",
                "Pay by card flagged for review (fraud challenge)",
            ),
            button(
                "bank_transfer",
                "alt",
                "Bank transfer (virtual account, pending)",
            ),
            button("deny", "bad", "Card 4911 1111 1111 1113 (denied by bank)"),
            button("expire", "bad", "Let it expire"),
        ]
        .concat(),
        Some("pending") => [
            button("settlement", "pay", "Simulate: the transfer arrived"),
            button("expire", "bad", "Let it expire"),
        ]
        .concat(),
        Some(other) => format!(r#"<p>This transaction is <b>{}</b>.</p>"#, escape(other)),
    };
    let key_warning = if order.client_key_set {
        ""
    } else {
        r#"<p class="muted">No client key configured.</p>"#
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Midtrans sandbox payment</title><style>{STYLE}</style></head><body><main>
<span class="badge">Midtrans sandbox (local)</span>
<h1>{item}</h1><p class="muted">Order {order_id}{customer}</p>
<div class="amount" data-amount="{amount_raw}">{amount}</div>
{actions}{key_warning}
<form method="dialog"><button class="alt" type="button" id="close">Close</button></form>
</main>
<script>
document.getElementById('close').addEventListener('click', function () {{
  if (window.parent !== window) window.parent.postMessage({{source: 'midtrans-sandbox', event: 'close'}}, '*');
  else history.back();
}});
</script></body></html>"#,
        item = escape(if order.item.is_empty() {
            "Payment"
        } else {
            order.item
        }),
        order_id = escape(order.order_id),
        customer = if order.customer.is_empty() {
            String::new()
        } else {
            format!(" · {}", escape(order.customer))
        },
        amount_raw = order.amount,
        amount = rupiah(order.amount),
    )
}

/// After an action: tell the opener (Snap.js overlay) the result, or offer the finish URL.
pub(crate) fn result(result: &Value, finish_url: Option<&str>) -> String {
    let status = result["transaction_status"].as_str().unwrap_or_default();
    let order_id = result["order_id"].as_str().unwrap_or_default();
    let status_code = result["status_code"].as_str().unwrap_or_default();
    let finish = finish_url.map(|url| {
        let sep = if url.contains('?') { '&' } else { '?' };
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("order_id", order_id)
            .append_pair("status_code", status_code)
            .append_pair("transaction_status", status)
            .finish();
        format!("{url}{sep}{query}")
    });
    let mut reported = result.clone();
    if let Some(obj) = reported.as_object_mut() {
        // Snap.js results never carry the signature.
        obj.remove("signature_key");
        if let Some(url) = &finish {
            obj.insert("finish_redirect_url".to_owned(), Value::String(url.clone()));
        }
    }
    let json = serde_json::to_string(&reported)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    let link = finish.map_or_else(String::new, |url| {
        format!(
            r#"<p><a id="finish" href="{}">Back to the merchant</a></p>"#,
            escape(&url)
        )
    });
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Payment {status}</title><style>{STYLE}</style></head>
<body><main><span class="badge">Midtrans sandbox (local)</span><h1 id="status">Transaction {status_html}</h1>
<p class="muted">Order {order_html} · status code {code_html}</p>{link}</main>
<script>
var result = {json};
if (window.parent !== window) window.parent.postMessage({{source: 'midtrans-sandbox', event: 'result', result: result}}, '*');
</script></body></html>"#,
        status_html = escape(status),
        order_html = escape(order_id),
        code_html = escape(status_code),
    )
}

pub(crate) fn not_found() -> String {
    error("This payment link does not exist or has expired.")
}

pub(crate) fn error(message: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Payment error</title><style>{STYLE}</style></head>
<body><main><h1>Payment not possible</h1><p>{}</p></main></body></html>"#,
        escape(message)
    )
}

/// `window.snap` as Snap.js offers it: `pay(token, options)` opens the payment page in an
/// overlay; its result calls `onSuccess` (status code 200), `onPending` (201) or `onError`
/// (anything else); closing it calls `onClose`. `embed(token, {embedId, ...})` shows it inside
/// an element instead.
pub(crate) fn snap_js(base_url: &str) -> String {
    let base = serde_json::to_string(base_url).unwrap_or_else(|_| "\"\"".to_owned());
    format!(
        r#"/* Siaran's local Midtrans sandbox: a stand-in for Snap.js. */
(function () {{
  'use strict';
  var origin = {base};
  var state = null;
  function teardown() {{
    if (state && state.node && state.node.parentNode) state.node.parentNode.removeChild(state.node);
    state = null;
  }}
  function frame(token) {{
    var iframe = document.createElement('iframe');
    iframe.src = origin + '/snap/v4/redirection/' + encodeURIComponent(token) + '?embedded=1';
    iframe.title = 'Midtrans sandbox payment';
    iframe.setAttribute('data-testid', 'midtrans-sandbox-frame');
    iframe.style.cssText = 'border:0;width:100%;height:100%;background:transparent';
    return iframe;
  }}
  function open(token, options, container) {{
    if (typeof token !== 'string' || !token) throw new Error('snap.pay: a transaction token is required');
    teardown();
    var node;
    if (container) {{
      node = frame(token);
      container.appendChild(node);
    }} else {{
      node = document.createElement('div');
      node.id = 'snap-midtrans';
      node.style.cssText = 'position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);display:flex;align-items:center;justify-content:center';
      var box = document.createElement('div');
      box.style.cssText = 'width:min(440px,96vw);height:min(640px,92vh)';
      box.appendChild(frame(token));
      node.appendChild(box);
      document.body.appendChild(node);
    }}
    state = {{ node: node, options: options || {{}} }};
  }}
  window.addEventListener('message', function (event) {{
    if (event.origin !== origin || !state) return;
    var data = event.data || {{}};
    if (data.source !== 'midtrans-sandbox') return;
    var options = state.options;
    teardown();
    if (data.event === 'close') {{
      if (options.onClose) options.onClose();
      return;
    }}
    var result = data.result || {{}};
    var code = String(result.status_code || '');
    if (code === '200' && options.onSuccess) options.onSuccess(result);
    else if (code === '201' && options.onPending) options.onPending(result);
    else if (code !== '200' && code !== '201' && options.onError) options.onError(result);
  }});
  window.snap = {{
    pay: function (token, options) {{ open(token, options, null); }},
    embed: function (token, options) {{
      var target = options && options.embedId && document.getElementById(options.embedId);
      if (!target) throw new Error('snap.embed: embedId must name an element');
      open(token, options, target);
    }},
    hide: function () {{ teardown(); }},
    show: function () {{}}
  }};
}})();
"#
    )
}
