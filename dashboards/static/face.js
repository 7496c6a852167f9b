// Draws the display face as inline SVG: the same drawing on the hub display and the dashboard.
"use strict";
const OHMNI_FACES = {
  smile: { colour: "#1b7f3b", mouth: "M30 62 Q50 80 70 62", label: "Smiling: below your usual" },
  neutral: { colour: "#8a6d00", mouth: "M32 66 L68 66", label: "Neutral: about your usual" },
  frown: { colour: "#b3261e", mouth: "M30 72 Q50 54 70 72", label: "Frowning: well above your usual" },
};

function renderFace(el, face) {
  const f = OHMNI_FACES[face] || OHMNI_FACES.neutral;
  el.dataset.face = face in OHMNI_FACES ? face : "neutral";
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", f.label);
  el.innerHTML =
    `<svg viewBox="0 0 100 100" width="100%" height="100%" aria-hidden="true">` +
    `<circle cx="50" cy="50" r="46" fill="${f.colour}"/>` +
    `<circle cx="35" cy="40" r="6" fill="#fff"/><circle cx="65" cy="40" r="6" fill="#fff"/>` +
    `<path d="${f.mouth}" stroke="#fff" stroke-width="6" fill="none" stroke-linecap="round"/></svg>`;
}
