// Stands in for resource:///org/gnome/shell/extensions/extension.js.

export class Extension {
    constructor(metadata) {
        this.metadata = metadata;
        this.uuid = metadata.uuid;
    }
}
