/* The sign-in form: the CSRF token (from the `csrf` cookie) and where to go back to
 * travel as hidden fields with the access token; POST /login checks them. */
"use strict";

(() => {
  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) return decodeURIComponent(rest.join("="));
    }
    return "";
  }

  const params = new URLSearchParams(location.search);
  const next = params.get("next") || "/";
  // Only a path on this site (never "//elsewhere" or "https://...").
  document.getElementById("next").value = /^\/(?!\/)/.test(next) ? next : "/";
  document.getElementById("login-error").hidden = !params.has("error");
  const form = document.getElementById("login");
  const fill = () => { document.getElementById("csrf").value = cookie("csrf"); };
  fill();
  form.addEventListener("submit", fill);
})();
