import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { acquireGpu, type Gpu } from '../workers/engine/gpu/device';

/**
 * WebGPU in Node through Dawn (the `webgpu` package), so the CLI and the tests run the very engine the
 * browser's worker runs. Dawn needs a Vulkan driver; on machines without a GPU two CPU drivers work:
 * lavapipe (Mesa >= 25, the faster) and SwiftShader (shipped with Debian's chromium, the one the headless
 * browser uses). A driver named in VK_ICD_FILENAMES / VK_DRIVER_FILES always wins.
 */

const SOFTWARE_DRIVERS = {
  lavapipe: ['/usr/share/vulkan/icd.d/lvp_icd.json', '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json'],
  swiftshader: ['/usr/lib/chromium/vk_swiftshader_icd.json'],
};
const SYSTEM_ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

Object.assign(globalThis, globals);

/**
 * Every GPU object this process created. dawn.node does not keep its instance alive from the adapters and
 * devices it hands out: once the instance is garbage-collected, later GPU calls crash the process.
 */
const instances: GPU[] = [];

function hasHardwareDriver(): boolean {
  const software = new Set(Object.values(SOFTWARE_DRIVERS).flat());
  return SYSTEM_ICD_DIRS.some(
    (dir) => existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.json') && !software.has(join(dir, f))),
  );
}

/** Candidate driver lists to try in order of preference; `null` means "leave the Vulkan loader alone". */
function driverCandidates(): (string | null)[] {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES || hasHardwareDriver()) return [null];
  const found = (paths: string[]) => paths.find((p) => existsSync(p));
  // Debian bookworm's own lavapipe (Mesa 22) is rejected by Dawn; when it is, SwiftShader is next.
  return [found(SOFTWARE_DRIVERS.lavapipe), found(SOFTWARE_DRIVERS.swiftshader)].filter((p): p is string => !!p);
}

/**
 * Acquires a device in Node. `dawnOptions` pass through to Dawn (for example `adapter=NAME`).
 * Throws with what to install when no driver works.
 */
export async function acquireNodeGpu(dawnOptions: string[] = []): Promise<Gpu> {
  const candidates = driverCandidates();
  if (candidates.length === 0) {
    throw new Error(
      'No Vulkan driver found for WebGPU. Install a GPU driver, or a software one: ' +
        '`apt-get install chromium libvulkan1` (SwiftShader), or Mesa >= 25 `mesa-vulkan-drivers` (lavapipe).',
    );
  }
  let lastError: unknown;
  for (const driver of candidates) {
    if (driver) process.env.VK_ICD_FILENAMES = driver;
    try {
      const gpu = create(dawnOptions);
      instances.push(gpu);
      return await acquireGpu(gpu);
    } catch (error) {
      lastError = error;
    }
  }
  const hint = /libvulkan/.test(String(lastError)) ? ' Install the Vulkan loader: `apt-get install libvulkan1`.' : '';
  throw new Error(`${lastError instanceof Error ? lastError.message : String(lastError)}${hint}`);
}
