//! The map as one self-contained HTML page: the SVG, and a panel that shows,
//! for the region under the pointer (or clicked), its ranges, permissions,
//! descriptors and the table walk of its first address; for a band, a piece
//! of physical memory, a window or a marked address, what it is. A label
//! points as its box does. No network resources.

use serde_json::{Value, json};

use super::{Model, draw};

/// The page for `model`.
pub fn html(model: &Model, title: &str) -> String {
    let regions: serde_json::Map<String, Value> = model
        .regions
        .iter()
        .map(|r| {
            let walk = model.walks.get(&r.va.0).cloned().unwrap_or_default();
            let value = json!({
                "va": format!("{:#x}-{:#x}", r.va.0, r.va.1),
                "pa": r.pa.map(|pa| format!("{:#x}-{:#x}", pa.0, pa.1)),
                "prot": r.prot,
                "map": r.map,
                "walk": walk,
            });
            (r.name.clone(), value)
        })
        .collect();
    // `<` escaped so no string can close the script element.
    let data = Value::Object(regions).to_string().replace('<', "\\u003c");
    let title = draw::escape(title);
    let svg = draw::svg(model, "");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: monospace; margin: 16px; }}
/* Of fixed height: what it shows never moves the map under the pointer. */
#panel {{ position: sticky; top: 0; background: #fffbe6; border: 1px solid #ccc; padding: 8px; white-space: pre-wrap; height: 14em; overflow: auto; }}
g[data-region], g[data-info] {{ cursor: pointer; }}
g[data-region]:hover rect, g[data-piece]:hover rect {{ stroke-width: 3; }}
g[data-info]:hover path {{ fill-opacity: 0.5; stroke-width: 2; }}
</style>
</head>
<body>
<h1>{title}</h1>
<div id="panel">Point at a region of the virtual column or its label (or click it) to see its walk; at a band, a piece of physical memory or a window's bar to see what it is.</div>
{svg}
<script>
const REGIONS = {data};
function show(name) {{
  const r = REGIONS[name];
  if (!r) return;
  const walk = r.walk.length ? r.walk.join("\n") : "(no walk of it in the transcript)";
  document.getElementById("panel").textContent =
    name + "  va=" + r.va + (r.pa ? "  pa=" + r.pa : "") + "  prot=" + r.prot + "  map=" + r.map +
    "\n\nwalk of its first address:\n" + walk;
}}
function say(text) {{
  document.getElementById("panel").textContent = text;
}}
// "mouseover" bubbles from the label's text and its hit box to the group.
for (const g of document.querySelectorAll("g[data-region]")) {{
  g.addEventListener("mouseover", () => show(g.dataset.region));
  g.addEventListener("click", () => show(g.dataset.region));
}}
for (const g of document.querySelectorAll("g[data-info]")) {{
  g.addEventListener("mouseover", () => say(g.dataset.info));
  g.addEventListener("click", () => say(g.dataset.info));
}}
if (location.hash) show(decodeURIComponent(location.hash.slice(1)));
</script>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{parse, tests::SESSION};

    #[test]
    fn the_page_carries_each_regions_walk_and_nothing_from_the_network() {
        let page = html(&parse(SESSION).unwrap(), "t");
        assert!(page.contains(r#""text":{"map":"1G:0,2M:0,4K:60""#), "{page}");
        assert!(page.contains("=> pa=0x40200000 level=3 size=4K prot=r-x"));
        assert!(
            !page.contains("http://") || page.matches("http://").count() == 1,
            "only the SVG namespace"
        );
        assert!(!page.contains("https://") && !page.contains("src="));
    }

    #[test]
    fn bands_pieces_and_windows_say_what_they_are() {
        let page = html(&parse(SESSION).unwrap(), "t");
        assert!(page.contains(r#"g[data-info]")) {"#), "a handler for them");
        assert!(page.contains(
            "<g data-info=\"mapping (text): va 0xffffa00061400000-0xffffa0006143c000 → pa 0x40200000-0x4023c000: 4K×60 ro x\">"
        ));
        // The stack's frames: mapped twice, in the linear map and as the stack.
        assert!(page.contains(
            r#"<g data-piece="stack" data-info="in use: stack: pa 0x48010000-0x48020000 (64 KiB); mapped at va 0xffff000000000000-0xffff000040000000 (1G×1 rw), va 0xffffffffff010000-0xffffffffff020000 (4K×16 rw)">"#
        ));
        assert!(page.contains(
            r#"<g data-window="KASLR window" data-info="KASLR window: 0xffffa0005c000000-0xffffe00014000000"#
        ));
    }
}
