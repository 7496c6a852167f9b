// What the pages say as people read it: money, and an appliance's name.
//
// Money as people read it: "£0.31", not "0.31 GBP". The browser's own currency data gives the symbol and the
// decimals (a yen has none); a code it does not know is shown as the API gives it.
"use strict";
function money(amount, currency) {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).format(Number(amount));
  } catch (e) {
    return `${amount} ${currency}`;
  }
}

// "washing machine", not "washing_machine" (every underscore: a name from another source may have several).
function applianceName(name) {
  return name.replaceAll("_", " ");
}
