import { useQuery } from '@tanstack/react-query';
import type { GpuReport } from '../../../workers/engine/api';
import { getEngine } from '../../lib/engine';

/** Asks the engine worker once per page load which GPU it has, and whether a kernel verified on it. */
export function useGpuReport() {
  return useQuery({ queryKey: ['gpu-report'], queryFn: async (): Promise<GpuReport> => getEngine().gpuReport() });
}
