"""Checks run inside a portal page in chromium, on every page at every size (import as
`page_checks`): axe-core (serious and critical violations), 24 px targets (WCAG 2.2 2.5.8, from
bounding boxes), the focus ring's contrast with what is around it (2.4.13/1.4.11: 3:1, from
computed styles while the keyboard focuses each control), and no sideways scrolling.

axe-core comes from npm (package.json at the repository root; `make test` runs npm ci); it is
injected into the page, so the page's context must bypass its Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error, Page

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "pages"
FAILING_IMPACTS = ("serious", "critical")
# What a check run while the page reloads meets (then the checks start again on the new page).
RELOADED = ("Execution context was destroyed", "axe is not defined")
MAX_TABS = 60  # a page with more focusable controls has its first 60 checked

# WCAG relative luminance and contrast, shared by the scripts below.
CONTRAST = """
  const rgba = (text) => {
    const p = text.match(/rgba?\\(([^)]+)\\)/)[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const luminance = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const ratio = (x, y) => {
    const a = luminance(x), b = luminance(y);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  };
  const backgroundOf = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
"""

# Targets smaller than 24x24 CSS px that WCAG 2.5.8's exceptions do not cover: a link inside a
# sentence (inline), or an undersized target whose 24 px circle (centred on it) meets no other
# target and no other undersized target's circle (spacing).
SMALL_TARGETS = """() => {
  const selector = "a[href], button, input:not([type=hidden]), select, textarea, summary, " +
    "[role=button], [tabindex]:not([tabindex='-1'])";
  const targets = [...document.querySelectorAll(selector)].map((el) => ({el, box:
    el.getBoundingClientRect()})).filter(({el, box}) => box.width > 0 && box.height > 0 &&
    box.right > 0 && box.bottom > 0 && getComputedStyle(el).visibility !== "hidden");
  const inSentence = (el) => {
    if (el.tagName !== "A" || getComputedStyle(el).display !== "inline") return false;
    const around = [...el.parentElement.childNodes].filter((n) => n !== el)
      .map((n) => n.textContent).join("").trim();
    return around.length > 0;
  };
  const centre = (b) => ({x: b.left + b.width / 2, y: b.top + b.height / 2});
  const distanceToBox = (p, b) => Math.hypot(
    Math.max(b.left - p.x, 0, p.x - b.right), Math.max(b.top - p.y, 0, p.y - b.bottom));
  const small = targets.filter(({box}) => box.width < 23.5 || box.height < 23.5);
  const failing = [];
  for (const t of small) {
    if (inSentence(t.el)) continue;
    const c = centre(t.box);
    const crowded = targets.some((u) => u !== t && !u.el.contains(t.el) && !t.el.contains(u.el) &&
      (small.includes(u) ? Math.hypot(c.x - centre(u.box).x, c.y - centre(u.box).y) < 24
                         : distanceToBox(c, u.box) < 12));
    if (crowded) {
      const name = (t.el.innerText || t.el.value || t.el.name || "").trim().slice(0, 30);
      failing.push(`${t.el.tagName.toLowerCase()} "${name}" ` +
        `${t.box.width.toFixed(0)}x${t.box.height.toFixed(0)}`);
    }
  }
  return failing;
}"""

# The ring of the element that has the keyboard focus: its outline and its contrast with the
# background around the element (the ring is drawn outside it).
FOCUS_RING = (
    "() => {"
    + CONTRAST
    + """
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const name = (el.innerText || el.value || el.name || el.id || "").trim().slice(0, 30);
  const width = style.outlineStyle === "none" ? 0 : parseFloat(style.outlineWidth);
  const contrast = width ? ratio(rgba(style.outlineColor), backgroundOf(el.parentElement)) : 0;
  return {name: `${el.tagName.toLowerCase()} "${name}"`, width, contrast};
}"""
)

RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}));
}"""


def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make install-test` installs it (npm ci)")
    return AXE.read_text("utf-8")


def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(content=axe_source())
    return [
        f"axe {v['impact']} {v['id']} ({v['help']}): {', '.join(v['nodes'])}"
        for v in page.evaluate(RUN_AXE)
        if v["impact"] in FAILING_IMPACTS
    ]


def small_targets(page: Page) -> list[str]:
    return [f"target below 24x24 px: {target}" for target in page.evaluate(SMALL_TARGETS)]


def weak_focus_rings(page: Page) -> list[str]:
    """Tab through the page (from its start); every focused control must show a ring of at least
    2 px with 3:1 contrast against the background around it."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate("window.scrollTo(0, 0)")
    weak, seen = [], []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        ring: dict[str, Any] | None = page.evaluate(FOCUS_RING)
        if ring is None or ring["name"] in seen[:1]:
            break
        seen.append(ring["name"])
        if ring["width"] < 2 or ring["contrast"] < 3:
            weak.append(
                f"focus ring of {ring['name']}: {ring['width']:.0f} px, "
                f"contrast {ring['contrast']:.2f}:1"
            )
    return weak


def sideways_scrolling(page: Page) -> list[str]:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size or {"width": width}
    return [f"scrolls sideways ({width} px)"] if width > viewport["width"] else []


def problems_of(page: Page, name: str, size: str) -> list[str]:
    """Every check on the page as it is now, and its screenshot (test-artifacts/pages/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)
    try:
        found = [
            *axe_violations(page),
            *small_targets(page),
            *sideways_scrolling(page),
            *weak_focus_rings(page),
        ]
    except Error as problem:  # the page went on to another (a live page reloads at the end)
        if not any(sign in str(problem) for sign in RELOADED):
            raise
        page.wait_for_load_state()
        return problems_of(page, name, size)
    return [f"{name} at {size}: {problem}" for problem in found]
