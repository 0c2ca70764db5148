// Dropping files from the desktop onto an element, as a Svelte attachment.
// It is the pointer shortcut only: every drop target also has a button that
// opens the file chooser, which is the way in for keyboards and screen readers.

import type { Attachment } from 'svelte/attachments';

export interface FileDropOptions {
  /** The files dropped (never empty). */
  ondrop(files: File[]): void;
  /** True while files are dragged over the element, to show that it takes them. */
  onactive?(active: boolean): void;
  /** When false the element refuses drops (shows "not allowed"). */
  enabled?: boolean;
}

/** True for a drag that carries files (not text or a link dragged within the page). */
export function carriesFiles(event: DragEvent): boolean {
  return event.dataTransfer?.types.includes('Files') ?? false;
}

export function fileDrop(options: FileDropOptions): Attachment<HTMLElement> {
  return (node) => {
    // dragenter/dragleave also fire when the pointer crosses child elements; count them.
    let depth = 0;
    const setActive = (active: boolean) => options.onactive?.(active);

    const enter = (event: DragEvent) => {
      if (!carriesFiles(event) || options.enabled === false) return;
      event.preventDefault();
      if (depth++ === 0) setActive(true);
    };
    const over = (event: DragEvent) => {
      if (!carriesFiles(event) || options.enabled === false) return;
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
    };
    const leave = (event: DragEvent) => {
      if (!carriesFiles(event) || depth === 0) return;
      if (--depth === 0) setActive(false);
    };
    const drop = (event: DragEvent) => {
      if (!carriesFiles(event) || options.enabled === false) return;
      event.preventDefault();
      depth = 0;
      setActive(false);
      const files = Array.from(event.dataTransfer?.files ?? []);
      if (files.length > 0) options.ondrop(files);
    };

    node.addEventListener('dragenter', enter);
    node.addEventListener('dragover', over);
    node.addEventListener('dragleave', leave);
    node.addEventListener('drop', drop);
    return () => {
      node.removeEventListener('dragenter', enter);
      node.removeEventListener('dragover', over);
      node.removeEventListener('dragleave', leave);
      node.removeEventListener('drop', drop);
      if (depth > 0) setActive(false);
    };
  };
}

/**
 * For the whole window: a file dropped anywhere that is not a drop target
 * must not make the browser open it in place of the dashboard.
 */
export function refuseStrayDrops(event: DragEvent): void {
  if (!carriesFiles(event) || event.defaultPrevented) return;
  event.preventDefault();
  if (event.type === 'dragover' && event.dataTransfer) event.dataTransfer.dropEffect = 'none';
}
