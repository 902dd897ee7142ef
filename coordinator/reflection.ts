/**
 * gRPC server reflection (what grpcurl and Postman ask), indexed on its first call.
 *
 * @grpc/reflection's `ReflectionService` decodes the file descriptors of every message type and
 * indexes them when it is constructed: about 100 ms of CPU, a tenth of a coordinator's start, for a
 * service most coordinators are never asked. Its two services (`grpc.reflection.v1` and
 * `v1alpha`) are registered here at once, as the library registers them, with handlers that
 * construct it on the first call and hand every call to its own handlers.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProto } from 'grpc-health-check';
import descriptor from 'protobufjs/ext/descriptor/index.js';

const { FileDescriptorProto } = descriptor;

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
      for (const { definition, handlers } of registrations(new ReflectionService({ ...otherServices(), ...withMapEntriesNamed(packageDefinition) }))) {
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

/**
 * The server's other services, described as well: `grpcurl HOST list` names them, and
 * `grpcurl HOST grpc.health.v1.Health/Check` (which finds the method through reflection) answered
 * "Symbol not found" without them.
 */
function otherServices(): PackageDefinition {
  const reflectionProtos = path.join(path.dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), 'build/proto');
  return {
    ...loadSync(healthProto),
    ...loadSync(['grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto'], { includeDirs: [reflectionProtos] }),
  };
}

/** What the descriptors protobufjs makes hold of a message type (ext/descriptor's decoded form). */
interface MessageDescriptor {
  name?: string;
  field?: { name?: string; type?: number; label?: number; typeName?: string }[];
  nestedType?: MessageDescriptor[];
  options?: { mapEntry?: boolean };
}

/**
 * `packageDefinition` with each map field's entry type named as protobuf names it: protobufjs
 * (ext/descriptor, which proto-loader's file descriptors come from) names the entry of
 * `map<...> labels` `Labels`, where protoc, its C++ and Python runtimes and Go's protodesc (grpcurl)
 * require `LabelsEntry` and refuse the whole file otherwise ("incorrect implicit map entry name").
 */
function withMapEntriesNamed(packageDefinition: PackageDefinition): PackageDefinition {
  const fixed = new Map<Buffer, Buffer>();
  const fix = (bin: Buffer): Buffer => {
    let out = fixed.get(bin);
    if (!out) {
      const file = FileDescriptorProto.decode(bin);
      for (const m of (file as unknown as { messageType?: MessageDescriptor[] }).messageType ?? []) nameMapEntries(m);
      out = Buffer.from(FileDescriptorProto.encode(file).finish());
      fixed.set(bin, out);
    }
    return out;
  };
  const result: PackageDefinition = {};
  for (const [name, def] of Object.entries(packageDefinition)) {
    const protos = (def as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    result[name] = Array.isArray(protos) ? ({ ...def, fileDescriptorProtos: (protos as Buffer[]).map(fix) } as typeof def) : def;
  }
  return result;
}

function nameMapEntries(message: MessageDescriptor): void {
  for (const nested of message.nestedType ?? []) nameMapEntries(nested);
  for (const field of message.field ?? []) {
    // A repeated message field whose type is an entry nested here: a map field.
    const last = field.typeName?.split('.').at(-1);
    const entry = message.nestedType?.find((n) => n.options?.mapEntry && n.name === last);
    if (!entry || !field.name || !field.typeName) continue;
    const named = mapEntryName(field.name);
    if (entry.name === named) continue;
    field.typeName = field.typeName.slice(0, field.typeName.length - last!.length) + named;
    entry.name = named;
  }
}

/** protoc's name for the entry type of map field `field` (`labels` -> `LabelsEntry`, `foo_bar` -> `FooBarEntry`). */
function mapEntryName(field: string): string {
  let out = '';
  let capNext = true;
  for (const c of field) {
    if (c === '_') capNext = true;
    else {
      out += capNext && c >= 'a' && c <= 'z' ? c.toUpperCase() : c;
      capNext = false;
    }
  }
  return `${out}Entry`;
}
