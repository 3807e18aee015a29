// What the GNOME extension's panel shows for each State given as an argument, and for
// the daemon not running, as one JSON object: gjs -m views.js EXTENSION_DIR STATE...
// ({"<state>": indicatorView(state, null), ..., "null": indicatorView(null, null)})

const {indicatorView} = await import(`file://${ARGV[0]}/dictation.js`);

const views = Object.fromEntries(ARGV.slice(1).map(state => [state, indicatorView(state, null)]));
views.null = indicatorView(null, null);
print(JSON.stringify(views));
