// Drives the GNOME extension's D-Bus client (data/gnome-shell-extension/dictation.js)
// under plain gjs the way the panel indicator does, on the session bus that
// DBUS_SESSION_BUS_ADDRESS names: gjs -m client.js EXTENSION_DIR
//
// Prints one JSON object a line:
//   {"xml": true|false}               whether the installed contract was found (if
//                                     not, nothing more: the extension stops there too)
//   {"state", "deliveryPath", "panel"} at every onChange: the client's State and
//                                     DeliveryPath (null: daemon not running) and what
//                                     the panel shows for them (indicatorView)
//   {"text", "final", "line"}         at every onText, with the menu line (textView)
//   {"error": message}                when a toggle() fails, as the panel would notify
//   {"destroyed": true}               after destroy()
//   {"signal": member}                after destroy(), every PropertiesChanged or
//                                     TranscriptionUpdated the daemon sends: the client's
//                                     handlers, had they stayed, would have printed first
// and reads commands from stdin, one a line: toggle, destroy. It exits at EOF.

import GLib from 'gi://GLib';
import Gio from 'gi://Gio';

const GioUnix = await import('gi://GioUnix').then(m => m.default, () => null);
const UnixInputStream = GioUnix?.InputStream ?? Gio.UnixInputStream;  // gjs before 1.80

const {
    DictationClient, OBJECT_PATH, indicatorView, readInterfaceXml, textView,
} = await import(`file://${ARGV[0]}/dictation.js`);

const say = event => print(JSON.stringify(event));
const xml = readInterfaceXml();
say({xml: xml !== null});

if (xml !== null) {
    const loop = new GLib.MainLoop(null, false);
    const client = new DictationClient(xml, {
        onChange: () => {
            const {state, deliveryPath} = client;
            say({state, deliveryPath, panel: indicatorView(state, deliveryPath)});
        },
        onText: (text, final) => say({text, final, line: textView(text, final)}),
    });

    const commands = {
        toggle: () => client.toggle(message => say({error: message})),
        destroy: () => {
            client.destroy();
            say({destroyed: true});
            for (const member of ['PropertiesChanged', 'TranscriptionUpdated']) {
                Gio.DBus.session.signal_subscribe(null, null, member, OBJECT_PATH, null,
                    Gio.DBusSignalFlags.NONE, () => say({signal: member}));
            }
        },
    };
    const input = new Gio.DataInputStream({
        base_stream: new UnixInputStream({fd: 0, close_fd: false}),
    });
    const readCommand = () => input.read_line_async(GLib.PRIORITY_DEFAULT, null, (_s, result) => {
        const [line] = input.read_line_finish_utf8(result);
        if (line === null) {
            loop.quit();
            return;
        }
        const command = commands[line.trim()];
        if (command)
            command();
        else
            say({unknownCommand: line});
        readCommand();
    });
    readCommand();
    loop.run();
}
