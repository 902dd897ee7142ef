/**
 * gRPC server reflection (what grpcurl and Postman ask), indexed on its first call.
 *
 * @grpc/reflection's `ReflectionService` decodes the file descriptors of every message type and
 * indexes them when it is constructed: about 100 ms of CPU, a tenth of a coordinator's start, for a
 * service most coordinators are never asked. Its two services (`grpc.reflection.v1` and
 * `v1alpha`) are registered here at once, as the library registers them, with handlers that
 * construct it on the first call and hand every call to its own handlers.
 */
import type * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

type Handler = (...args: unknown[]) => unknown;

/** The services `service` registers, by what it passes to `addService`. */
function registrations(service: ReflectionService): { definition: grpc.ServiceDefinition; handlers: Record<string, Handler> }[] {
  const out: { definition: grpc.ServiceDefinition; handlers: Record<string, Handler> }[] = [];
  const recorder = { addService: (definition: grpc.ServiceDefinition, handlers: Record<string, Handler>) => out.push({ definition, handlers }) };
  service.addToServer(recorder as unknown as Pick<grpc.Server, 'addService'>);
  return out;
}

export function addReflection(server: Pick<grpc.Server, 'addService'>, packageDefinition: PackageDefinition): void {
  let byPath: Map<string, Handler> | undefined;
  const real = (methodPath: string): Handler => {
    if (!byPath) {
      byPath = new Map();
      for (const { definition, handlers } of registrations(new ReflectionService(packageDefinition))) {
        for (const [name, method] of Object.entries(definition)) {
          const handler = handlers[name];
          if (handler) byPath.set(method.path, handler);
        }
      }
    }
    const handler = byPath.get(methodPath);
    if (!handler) throw new Error(`server reflection has no handler for ${methodPath}`);
    return handler;
  };
  // An empty package: the same services and methods, without the index.
  for (const { definition } of registrations(new ReflectionService({}))) {
    const handlers: Record<string, Handler> = {};
    for (const [name, method] of Object.entries(definition)) handlers[name] = (...args) => real(method.path)(...args);
    server.addService(definition, handlers as grpc.UntypedServiceImplementation);
  }
}
