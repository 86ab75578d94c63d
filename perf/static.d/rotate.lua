-- SPDX-License-Identifier: MIT
-- perf/static's wrk script: HttpArena's static rotation (its requests/static-rotate.lua, as
-- described in PROFILES.md §7): every request asks for the next of the 20 files, in the table's
-- order, round and round. The Accept-Encoding header comes from wrk's -H (wrk.headers).
local paths = {
    "/static/reset.css", "/static/layout.css", "/static/theme.css", "/static/components.css",
    "/static/utilities.css", "/static/analytics.js", "/static/helpers.js", "/static/app.js",
    "/static/vendor.js", "/static/router.js", "/static/header.html", "/static/footer.html",
    "/static/regular.woff2", "/static/bold.woff2", "/static/logo.svg", "/static/icon-sprite.svg",
    "/static/hero.webp", "/static/thumb1.webp", "/static/thumb2.webp", "/static/manifest.json",
}
local i = 0

request = function()
    i = i % #paths + 1
    return wrk.format(nil, paths[i])
end
