// Runs the GNOME extension itself (data/gnome-shell-extension/extension.js) under plain
// gjs, with stand-ins for the Shell's modules (tests/gjs/shell/), on the session bus that
// DBUS_SESSION_BUS_ADDRESS names: gjs -m panel.js EXTENSION_DIR WORK_DIR
//
// The extension's modules are copied into WORK_DIR with their Shell imports pointed at
// the stand-ins; dictation.js is used as it is. The extension is enabled at once.
//
// Prints one JSON object a line:
//   {"panel": {"icons": [...], "menu": [{label, visible, reactive, sensitive}, ...]},
//    "notifications": [{title, body}, ...]}
//       what the panel button and its menu show, each time that changes
//   {"clicked": label} or {"noSuchItem": label}
//   {"disabled": true}         after the extension is disabled
//   {"changedAfterDisable": true}  a widget of the disabled extension changed
//   {"signal": member}         after disabling, every PropertiesChanged or
//                              TranscriptionUpdated from the daemon (had the extension
//                              kept listening, its change would have printed first)
// and reads commands from stdin, one a line: "click LABEL" (a click on the enabled menu
// item showing LABEL), "disable". It exits at EOF.

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';

import {notifications, onChange} from './shell/record.js';

const GioUnix = await import('gi://GioUnix').then(m => m.default, () => null);
const UnixInputStream = GioUnix?.InputStream ?? Gio.UnixInputStream;  // gjs before 1.80

const [extensionDir, workDir] = ARGV;
const here = GLib.path_get_dirname(GLib.filename_from_uri(import.meta.url)[0]);
const read = path => new TextDecoder().decode(Gio.File.new_for_path(path).load_contents(null)[1]);
const write = (path, text) => Gio.File.new_for_path(path).replace_contents(
    new TextEncoder().encode(text), null, false, Gio.FileCreateFlags.NONE, null);

const source = read(`${extensionDir}/extension.js`)
    .replaceAll("'gi://St'", `'file://${here}/shell/St.js'`)
    .replaceAll("'resource:///org/gnome/shell/", `'file://${here}/shell/`);
write(`${workDir}/extension.js`, source);
write(`${workDir}/dictation.js`, read(`${extensionDir}/dictation.js`));
const metadata = JSON.parse(read(`${extensionDir}/metadata.json`));

const {default: V2mExtension} = await import(`file://${workDir}/extension.js`);
const Main = await import(`file://${here}/shell/ui/main.js`);

const say = event => print(JSON.stringify(event));
const indicator = () => Main.panel.statusArea[metadata.uuid];

function snapshot() {
    const button = indicator();
    return {
        panel: button ? {
            icons: button.children.map(child => child.icon_name),
            menu: button.menu.items.map(item => ({
                label: item.label.text,
                visible: item.visible,
                reactive: item.reactive,
                sensitive: item.sensitive,
            })),
        } : null,
        notifications: [...notifications],
    };
}

// Changes made in one go (one _sync) are shown once, when the loop is next idle.
let pending = false;
let last = '';
onChange(() => {
    if (pending)
        return;
    pending = true;
    GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
        pending = false;
        const now = JSON.stringify(snapshot());
        if (now !== last)
            print(now);
        last = now;
        return GLib.SOURCE_REMOVE;
    });
});

const extension = new V2mExtension({...metadata, path: extensionDir});
extension.enable();

const commands = {
    click: label => {
        const item = indicator()?.menu.items.find(
            i => i.label.text === label && i.visible && i.reactive && i.sensitive);
        if (!item) {
            say({noSuchItem: label});
            return;
        }
        say({clicked: label});
        item.activate();
    },
    disable: () => {
        const button = indicator();
        extension.disable();
        say({disabled: true, destroyed: button?.destroyed ?? null});
        onChange(() => say({changedAfterDisable: true}));
        for (const member of ['PropertiesChanged', 'TranscriptionUpdated']) {
            Gio.DBus.session.signal_subscribe(null, null, member, '/org/v2m/Dictation', null,
                Gio.DBusSignalFlags.NONE, () => say({signal: member}));
        }
    },
};

const loop = new GLib.MainLoop(null, false);
const input = new Gio.DataInputStream({base_stream: new UnixInputStream({fd: 0, close_fd: false})});
const readCommand = () => input.read_line_async(GLib.PRIORITY_DEFAULT, null, (_s, result) => {
    const [line] = input.read_line_finish_utf8(result);
    if (line === null) {
        loop.quit();
        return;
    }
    const [name, ...rest] = line.split(' ');
    if (name in commands)
        commands[name](rest.join(' '));
    else
        say({unknownCommand: line});
    readCommand();
});
readCommand();
loop.run();
